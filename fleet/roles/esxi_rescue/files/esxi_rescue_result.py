#!/usr/bin/env python3
"""Reads the rescue agent's verdict and writes the fleet summary (Python 3 standard library only).

  esxi_rescue_result.py parse CONSOLE_LOG [--offset BYTES]
      The last valid result line of a console capture (serial-over-LAN log, virtual serial
      port log), from byte BYTES on, as JSON.
  esxi_rescue_result.py collect --console FILE [--offset BYTES] [--report-dir DIR --uuid UUID
                                [--since EPOCH]]
      The verdict of one run: the console's result line and, when the report server's sink is
      readable, the newest report stored for that SMBIOS UUID since EPOCH.
  esxi_rescue_result.py summary --rows DIR --hosts H1,H2,... --json OUT --csv OUT
      The fleet summary: one row per host (a host without a row file: verdict not_run).
  esxi_rescue_result.py selftest
      Checks the parser on hand-made lines.

The result line (the agent's last line on every console, ASCII):

  ESXI-RESCUE-RESULT v1 {json} crc32=XXXXXXXX

XXXXXXXX is the CRC-32 (IEEE, zlib.crc32) of the JSON bytes exactly as printed between "v1 " and
" crc32=", in 8 lower-case hex digits. Serial-over-LAN drops and garbles bytes, so a line whose
CRC or JSON does not check is counted as damaged and never trusted; the last valid line wins.
"""

import argparse
import csv
import fcntl
import io
import json
import os
import re
import sys
import zlib

MARKER = b"ESXI-RESCUE-RESULT v1 "
LINE_RE = re.compile(rb"ESXI-RESCUE-RESULT v1 (\{.*\}) crc32=([0-9a-f]{8})(?![0-9A-Za-z])")
VERDICTS = ("repaired", "nothing_to_do", "planned", "refused", "failed", "no_esxi_disk")
FIELDS = ("host", "bmc", "verdict", "uuid", "serial", "disk", "changes", "report", "errors",
          "mode", "source", "seconds", "server_report", "message")


def check_line(raw):
    """(result dict, None) for a valid line, (None, reason) for a damaged one."""
    match = LINE_RE.search(raw)
    if not match:
        return None, "no JSON/crc32 part"
    body, crc = match.group(1), match.group(2).decode()
    actual = "%08x" % (zlib.crc32(body) & 0xFFFFFFFF)
    if actual != crc:
        return None, "crc32 %s does not match the JSON (%s)" % (crc, actual)
    try:
        result = json.loads(body.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as error:
        return None, "JSON does not parse: %s" % error
    if not isinstance(result, dict) or result.get("verdict") not in VERDICTS:
        return None, "unknown verdict %r" % (result.get("verdict") if isinstance(result, dict)
                                            else result)
    return result, None


def parse_bytes(data):
    """Scans a console capture: the last valid result line, and every damaged one."""
    last, valid, damaged = None, 0, []
    for raw in data.replace(b"\r", b"\n").split(b"\n"):
        if MARKER not in raw and b"ESXI-RESCUE-RESULT" not in raw:
            continue
        result, reason = check_line(raw)
        if result is None:
            damaged.append(reason)
        else:
            valid += 1
            last = result
    return {"result": last, "valid_lines": valid, "damaged_lines": len(damaged),
            "damaged": damaged[-5:]}


def parse_file(path, offset=0):
    if not path or not os.path.isfile(path):
        return {"result": None, "valid_lines": 0, "damaged_lines": 0, "damaged": [],
                "console": "missing" if path else "not configured"}
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        # A capture that shrank was rotated or truncated: read it all.
        handle.seek(offset if 0 <= offset <= size else 0)
        parsed = parse_bytes(handle.read())
    parsed["console"] = "read"
    return parsed


def swapped_uuid(uuid):
    """The same UUID with its first three fields byte-swapped (SMBIOS before 2.6 stored them
    little-endian, and some BMCs still show them the other way round than Linux does)."""
    parts = uuid.lower().split("-")
    if len(parts) != 5 or [len(p) for p in parts] != [8, 4, 4, 4, 12]:
        return None
    flip = lambda h: "".join(reversed([h[i:i + 2] for i in range(0, len(h), 2)]))
    return "-".join([flip(parts[0]), flip(parts[1]), flip(parts[2]), parts[3], parts[4]])


def uuid_match(seen, expected):
    """exact, swapped (same UUID, first fields byte-swapped), mismatch, or unknown."""
    if not seen or not expected:
        return "unknown"
    if seen.lower() == expected.lower():
        return "exact"
    return "swapped" if swapped_uuid(expected) == seen.lower() else "mismatch"


def server_report(report_dir, uuid, since):
    """The newest report the server stored for UUID (REPORT_DIR/<uuid>/<seq>.json) since EPOCH;
    the UUID as the BMC shows it, or byte-swapped (the server files by the agent's SMBIOS UUID)."""
    if not report_dir or not uuid:
        return None
    candidates = []
    for form in {uuid.lower(), swapped_uuid(uuid) or uuid.lower()}:
        folder = os.path.join(report_dir, form)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if name.endswith(".json") and os.path.isfile(path) and os.path.getmtime(path) >= since:
                candidates.append(path)
    if not candidates:
        return None
    path = max(candidates, key=lambda p: (os.path.getmtime(p), p))
    try:
        with open(path, "rb") as handle:
            report = json.load(handle)
    except (OSError, ValueError) as error:
        return {"path": path, "error": "unreadable: %s" % error}
    # docs/report.md: {"schema_version": 2, "host": {...}, "result": {the result line's JSON}, ...}
    result = report.get("result") if isinstance(report, dict) else None
    if not isinstance(result, dict) or result.get("verdict") not in VERDICTS:
        return {"path": path, "error": "no result with a known verdict in the report"}
    return {"path": path, "verdict": result["verdict"], "result": result}


def collect(args):
    parsed = parse_file(args.console, args.offset)
    stored = server_report(args.report_dir, args.uuid, args.since - 2)
    out = {"console": parsed, "server_report": stored}
    result = parsed["result"]
    if result is not None:
        out.update(verdict=result["verdict"], source="console", result=result)
    elif stored and stored.get("verdict"):
        out.update(verdict=stored["verdict"], source="report_server", result=stored["result"])
    elif parsed["damaged_lines"]:
        out.update(verdict="damaged_result", source="console", result=None)
    else:
        out.update(verdict="no_result", source=None, result=None)
    out["uuid_match"] = uuid_match((out["result"] or {}).get("uuid"), args.uuid)
    return out


def cell(value):
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def summary(args):
    # Hosts finish concurrently: the rows directory is the lock, so the last summary written
    # has read every row written before it.
    os.makedirs(args.rows, exist_ok=True)
    lock = os.open(args.rows, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return summary_locked(args)
    finally:
        os.close(lock)


def summary_locked(args):
    hosts = [h for h in args.hosts.split(",") if h]
    rows = []
    for host in hosts:
        path = os.path.join(args.rows, host + ".json")
        try:
            with open(path, encoding="utf-8") as handle:
                row = json.load(handle)
        except (OSError, ValueError):
            row = {"host": host, "verdict": "not_run",
                   "message": "no row: the play stopped before this host finished (or it never started); see the Ansible output"}
        rows.append({key: row.get(key) for key in FIELDS})
    counts = {}
    for row in rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    doc = {"hosts": len(rows), "verdicts": counts, "rows": rows}
    write_atomic(args.json, json.dumps(doc, indent=2, sort_keys=False) + "\n")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(FIELDS)
    for row in rows:
        writer.writerow([cell(row[key]) for key in FIELDS])
    write_atomic(args.csv, text.getvalue())
    return doc


def write_atomic(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def make_line(result):
    body = json.dumps(result, separators=(",", ":")).encode()
    return b"ESXI-RESCUE-RESULT v1 " + body + b" crc32=%08x" % (zlib.crc32(body) & 0xFFFFFFFF)


def selftest():
    good = {"verdict": "repaired", "uuid": "0a5e0001-0000-4000-8000-000000000001",
            "serial": "H1", "disk": "/dev/sda", "changes": ["gpt: slots"], "report": "RSQ00001.JSN",
            "errors": [], "mode": "repair"}
    older = dict(good, verdict="failed", errors=["x"])
    line, old = make_line(good), make_line(older)
    cases = [
        ("one line", b"boot\r\n" + line + b"\r\n", "repaired", 0),
        ("last valid wins", old + b"\n" + line + b"\n", "repaired", 0),
        ("prefix on the line", b"[ 12.3] " + line + b"\n", "repaired", 0),
        ("a dropped byte", line[:40] + line[41:] + b"\n", None, 1),
        ("flipped crc", line[:-1] + (b"0" if line[-1:] != b"0" else b"1") + b"\n", None, 1),
        ("damaged after valid", old + b"\n" + line[:-3] + b"\n", "failed", 1),
        ("unknown verdict", make_line(dict(good, verdict="great")) + b"\n", None, 1),
        ("no line", b"nothing here\n", None, 0),
    ]
    failures = 0
    for name, data, verdict, damaged in cases:
        parsed = parse_bytes(data)
        got = parsed["result"]["verdict"] if parsed["result"] else None
        ok = got == verdict and parsed["damaged_lines"] == damaged
        failures += not ok
        print("%s selftest: %s (verdict %s, damaged %d)" % ("ok" if ok else "FAIL", name, got,
                                                           parsed["damaged_lines"]))
    for seen, expected, want in (
            ("0a5e0001-0000-4000-8000-000000000001", "0A5E0001-0000-4000-8000-000000000001", "exact"),
            ("01005e0a-0000-0040-8000-000000000001", "0a5e0001-0000-4000-8000-000000000001", "swapped"),
            ("0a5e0001-0000-4000-8000-000000000002", "0a5e0001-0000-4000-8000-000000000001", "mismatch")):
        got = uuid_match(seen, expected)
        failures += got != want
        print("%s selftest: uuid %s vs %s: %s" % ("ok" if got == want else "FAIL", seen, expected, got))
    # The report server's sink: REPORT_DIR/<uuid>/<seq>.json, newest since power-on wins.
    import tempfile
    import types
    with tempfile.TemporaryDirectory() as sink:
        folder = os.path.join(sink, good["uuid"])
        os.makedirs(folder)
        for seq, result in ((1, older), (2, good)):
            with open(os.path.join(folder, "%06d.json" % seq), "w") as handle:
                json.dump({"schema_version": 2, "host": {"uuid": good["uuid"]}, "result": result},
                          handle)
        args = types.SimpleNamespace(console=os.path.join(sink, "none.log"), offset=0,
                                     report_dir=sink, uuid=good["uuid"].upper(), since=0)
        got = collect(args)
        ok = got["verdict"] == "repaired" and got["source"] == "report_server"
        failures += not ok
        print("%s selftest: report server sink (verdict %s from %s)" % (
            "ok" if ok else "FAIL", got["verdict"], got["source"]))
    return failures


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("parse")
    p.add_argument("console")
    p.add_argument("--offset", type=int, default=0)
    c = sub.add_parser("collect")
    c.add_argument("--console", default="")
    c.add_argument("--offset", type=int, default=0)
    c.add_argument("--report-dir", default="")
    c.add_argument("--uuid", default="")
    c.add_argument("--since", type=float, default=0)
    s = sub.add_parser("summary")
    s.add_argument("--rows", required=True)
    s.add_argument("--hosts", required=True)
    s.add_argument("--json", required=True)
    s.add_argument("--csv", required=True)
    sub.add_parser("selftest")
    args = parser.parse_args(argv)
    if args.command == "parse":
        print(json.dumps(parse_file(args.console, args.offset)))
    elif args.command == "collect":
        print(json.dumps(collect(args)))
    elif args.command == "summary":
        print(json.dumps(summary(args)))
    else:
        return 1 if selftest() else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
