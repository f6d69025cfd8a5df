#!/usr/bin/env bash
# Repair of a bank whose state.tgz is 64 MiB (plain and 7.0U2+ encrypted): time and peak memory,
# checked against issue 10's budgets: at most 1.5x the time of one `gzip -dc | gzip -6` pass of
# the same state.tgz on this machine, and a peak RSS of at most 3x the archive. Exits 1 when a
# budget is not met.
# Usage: bench-state64.sh RESCUE_AGENT MKFIXTURE WORKDIR
set -euo pipefail
BIN=$1 MK=$2 work=$3
here=$(cd "$(dirname "$0")/.." && pwd)
ENVPY="$here/rescue-agent/fixtures/scripts/envelope.py"

make_local() { # local.tgz: esx.conf with a passthru owner + 64 MiB of incompressible data
  python3 - "$1" <<'PY'
import io, os, sys, tarfile, gzip, random
conf = b'/adv/Misc/HostName = "esx01"\n/device/000:022:00.0/owner = "passthru"\n'
rnd = random.Random(64)
big = rnd.randbytes(64 << 20)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
    for name, data in [("etc/vmware/esx.conf", conf), ("etc/vmware/dvsdata.db", big)]:
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 1700000000; ti.mode = 0o644
        t.addfile(ti, io.BytesIO(data))
with open(sys.argv[1], "wb") as f:
    f.write(gzip.compress(buf.getvalue(), mtime=0))
PY
}
wrap_state() { # state.tgz with the given members (files in cwd)
  python3 - "$@" <<'PY'
import io, sys, tarfile, gzip, os
out, members = sys.argv[1], sys.argv[2:]
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
    for m in members:
        data = open(m, "rb").read()
        ti = tarfile.TarInfo(os.path.basename(m)); ti.size = len(data); ti.mtime = 1700000000; ti.mode = 0o644
        t.addfile(ti, io.BytesIO(data))
open(out, "wb").write(gzip.compress(buf.getvalue(), mtime=0))
PY
}

bank_offset() { # byte offset of slot 5 of a fresh esxi7 fixture (512-byte sectors)
  echo $((208896 * 512))
}

for flavor in plain encrypted; do
  img="$work/s64-$flavor.img"
  "$MK" esxi7 --size 64G --flavor plain "$img" >/dev/null
  (cd "$work" && make_local local.tgz)
  if [ "$flavor" = plain ]; then
    (cd "$work" && wrap_state state.tgz local.tgz)
  else
    (cd "$work" && python3 "$ENVPY" make-info --out encryption.info --seed bench \
      && python3 "$ENVPY" encrypt --info encryption.info --in local.tgz --out local.tgz.ve \
      && wrap_state state.tgz local.tgz.ve encryption.info)
  fi
  size=$(stat -c %s "$work/state.tgz")
  mcopy -o -i "$img@@$(bank_offset)" "$work/state.tgz" ::state.tgz
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$BIN" repair --passthru all "$img" >/dev/null
  read -r secs kb < "$work/time.txt"
  /usr/bin/time -f "%e" -o "$work/base.txt" sh -c "gzip -dc '$work/state.tgz' | gzip -6 >/dev/null"
  read -r base < "$work/base.txt"
  echo "state.tgz $flavor, $size bytes: repair ${secs} s, peak RSS $((kb / 1024)) MiB;" \
    "baseline gzip -dc | gzip -6 ${base} s"
  verdict=$(awk -v t="$secs" -v b="$base" -v kb="$kb" -v size="$size" 'BEGIN {
    time_ok = t <= 1.5 * b; rss_ok = kb * 1024 <= 3 * size
    printf "  %.2fx the baseline (budget 1.5x), RSS %.2fx the archive (budget 3x): %s\n",
      t / b, kb * 1024 / size, (time_ok && rss_ok) ? "within budget" : "OVER BUDGET"
  }')
  echo "$verdict"
  case $verdict in *OVER*) over=1 ;; esac
  rm -f "$img"
done
exit "${over:-0}"
