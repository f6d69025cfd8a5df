#!/usr/bin/env bash
# End-to-end test of the fleet layer: the esxi_rescue Ansible role (fleet/) rescues three
# emulated hosts through emulated BMCs, everything on loopback:
#   sushy-tools (Redfish BMC emulator, libvirt driver, TLS on 127.0.0.1)
#   → libvirt → QEMU TCG domains (q35, OVMF, the fixture disk on SATA, user-mode NIC, serial
#     console to a file standing in for serial-over-LAN)
#   → the rescue ISO (fleet preset, reports to `rescue-image serve` on 127.0.0.1, reached from
#     the guests as 10.0.2.2).
# Hosts: h1 a damaged ESXi 5 disk (slots compacted, passthru on the boot AHCI) → repaired;
# h2 an encrypted 7.0U2+/8.x disk with a ConfigStore passthru row on the AHCI → repaired;
# h3 a foreign Linux disk → no_esxi_disk, byte-for-byte unchanged; dead: a BMC address that
# answers nothing → unreachable, while the others finish; h4 a copy of h1's disk, run with
# esxi_rescue_mode: plan (the plan ISO) → planned, unchanged. Then a second run over h1 and h2
# repairs nothing; a running h3 with esxi_rescue_force_off false is refused. Prints `fleet: N checks passed, M failed`; exit 0 only when none failed.
#
# Variables: FLEET_ISO (an ISO to test; default: build out/esxi-rescue.iso from this tree, unless
# FLEET_BUILD=0), FLEET_KEEP=1 (keep the work directory), FLEET_WAIT_DELAY and
# FLEET_WAIT_RETRIES (default 10 s × 60: at most 10 minutes per host; other people's QEMU runs
# on the same 2 cores have stretched one host to 9 minutes).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
t_start=$(date +%s)
passed=0 failed=0
log() { echo "fleet: $*"; }
check() { # check NAME COMMAND...: one counted check
  local name=$1; shift
  if "$@" >/dev/null 2>&1; then passed=$((passed + 1)); echo "ok    $name"
  else failed=$((failed + 1)); echo "FAIL  $name"; fi
}
fail_now() { echo "FAIL  $*"; failed=$((failed + 1)); finish; }

# --- prerequisites -----------------------------------------------------------------------------
bash scripts/setup-fleet.sh || { echo "FAIL  setup-fleet.sh"; echo "fleet: 0 checks passed, 1 failed"; exit 1; }
venv=$root/target/fleet-venv
cargo build -q --locked -p rescue-image -p rescue-agent \
  && cargo build -q --locked -p esxi-fixtures --bin mkfixture \
  || { echo "FAIL  cargo build"; echo "fleet: 0 checks passed, 1 failed"; exit 1; }
rescue_image=$root/target/debug/rescue-image
agent=$root/target/debug/rescue-agent
mkfixture=$root/target/debug/mkfixture
if [ -z "${FLEET_ISO:-}" ] && [ "${FLEET_BUILD:-1}" = 1 ]; then
  # The ISO of this tree (incremental: seconds when nothing changed).
  { bash scripts/build-agent.sh && bash image/build.sh; } > target/fleet-build.log 2>&1 \
    || { echo "FAIL  building the ISO (target/fleet-build.log)"; echo "fleet: 0 checks passed, 1 failed"; exit 1; }
fi
iso=${FLEET_ISO:-out/esxi-rescue.iso}
[ -f "$iso" ] || { echo "FAIL  no ISO at $iso (bash scripts/build.sh)"; echo "fleet: 0 checks passed, 1 failed"; exit 1; }
# Polls every 10 s (the role's default is 5 s): each poll is a module run on the controller, and
# on 2 cores shared with 4 TCG guests the polling's own CPU slows the guests.
wait_delay=${FLEET_WAIT_DELAY:-10}
wait_retries=${FLEET_WAIT_RETRIES:-60}
virsh=(virsh -q -c qemu:///system)

work=$(mktemp -d "${TMPDIR:-/tmp}/esxi-rescue-fleet.XXXXXX")
chmod 755 "$work"
run_id=$(basename "$work" | tr -dc 'A-Za-z0-9' | tail -c 7)
pool=esxi-rescue-fleet-$run_id
started_virtlogd="" started_libvirtd="" sushy_pid="" serve_pid="" play_pid=""
domains=()

# --- cleanup: everything this script started, by PID / by name --------------------------------
cleanup() {
  trap - EXIT INT TERM
  [ -z "$play_pid" ] || kill "$play_pid" 2>/dev/null
  for d in "${domains[@]}"; do
    "${virsh[@]}" destroy "$d" >/dev/null 2>&1
    "${virsh[@]}" undefine --nvram "$d" >/dev/null 2>&1
  done
  if "${virsh[@]}" pool-info "$pool" >/dev/null 2>&1; then
    for v in $("${virsh[@]}" vol-list "$pool" 2>/dev/null | awk '{print $1}'); do
      "${virsh[@]}" vol-delete --pool "$pool" "$v" >/dev/null 2>&1
    done
    "${virsh[@]}" pool-destroy "$pool" >/dev/null 2>&1
  fi
  for p in $sushy_pid $serve_pid; do kill "$p" 2>/dev/null; done
  for p in $sushy_pid $serve_pid; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.3; done
  done
  [ -z "$started_libvirtd" ] || kill "$started_libvirtd" 2>/dev/null
  [ -z "$started_virtlogd" ] || kill "$started_virtlogd" 2>/dev/null
  if [ "${FLEET_KEEP:-0}" = 1 ]; then echo "fleet: work directory kept: $work"
  else rm -rf "$work"; fi
}
finish() {
  cleanup
  echo "fleet: wall time $(( $(date +%s) - t_start )) s"
  echo "fleet: $passed checks passed, $failed failed"
  [ "$failed" -eq 0 ]; exit $?
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for SECONDS COMMAND...: bounded
  local until=$(( $(date +%s) + $1 )); shift
  while ! "$@" >/dev/null 2>&1; do [ "$(date +%s)" -lt "$until" ] || return 1; sleep 0.5; done
}

log "setup and build: $(( $(date +%s) - t_start )) s"

# --- 0. the parser on hand-made lines, the playbook's syntax ----------------------------------
helper=$root/fleet/roles/esxi_rescue/files/esxi_rescue_result.py
check "playbook syntax (ansible-playbook --syntax-check, and every YAML file of fleet/: included task files are not read by --syntax-check)" \
  bash -c "cd fleet && '$venv/bin/ansible-playbook' -i inventory.example.yml --syntax-check rescue.yml \
    && '$venv/bin/python' -c 'import glob, sys, yaml; [yaml.safe_load(open(f)) for f in glob.glob(\"**/*.yml\", recursive=True)]'"
check "result-line parser: hand-made lines (valid, last wins, dropped byte, bad crc, unknown verdict)" \
  "$venv/bin/python" "$helper" selftest

# --- 1. libvirt (started only when not running) ----------------------------------------------
if ! timeout 10 "${virsh[@]}" version >/dev/null 2>&1; then
  if ! ps -C virtlogd -o stat= 2>/dev/null | grep -qv '^Z'; then # (a zombie does not count)
    virtlogd -d -p "$work/virtlogd.pid" && wait_for 10 test -s "$work/virtlogd.pid" \
      && started_virtlogd=$(cat "$work/virtlogd.pid")
  fi
  libvirtd -d -p "$work/libvirtd.pid" && wait_for 10 test -s "$work/libvirtd.pid" \
    && started_libvirtd=$(cat "$work/libvirtd.pid")
  wait_for 30 timeout 5 "${virsh[@]}" version || fail_now "libvirtd does not answer"
  log "started virtlogd ${started_virtlogd:-(already running)} and libvirtd $started_libvirtd"
fi
mkdir -p "$work/pool"
cat > "$work/pool.xml" <<EOF
<pool type='dir'><name>$pool</name><target><path>$work/pool</path></target></pool>
EOF
"${virsh[@]}" pool-create "$work/pool.xml" >/dev/null || fail_now "libvirt storage pool"

# --- 2. fixture disks ------------------------------------------------------------------------
hosts=(h1 h2 h3 h4)
declare -A uuid serial
uuid[h1]=0a5e0001-f1ee-4000-8000-000000000001; serial[h1]=FLEET-H1
uuid[h2]=0a5e0001-f1ee-4000-8000-000000000002; serial[h2]=FLEET-H2
uuid[h3]=0a5e0001-f1ee-4000-8000-000000000003; serial[h3]=FLEET-H3
uuid[h4]=0a5e0001-f1ee-4000-8000-000000000004; serial[h4]=FLEET-H4
"$mkfixture" esxi5 --owner 5:000:31.2:passthru --damage compact-keep "$work/h1.img" >"$work/mkfixture.log" \
  && "$mkfixture" esxi7 --flavor encrypted --store-pci 5:0000:00:1f.2:OWNER_PASSTHRU "$work/h2.img" >>"$work/mkfixture.log" \
  && "$mkfixture" foreign linux --size $((256 << 20)) "$work/h3.img" >>"$work/mkfixture.log" \
  || fail_now "mkfixture"
cp --sparse=always "$work/h1.img" "$work/h4.img" # the plan-only host: the same damage as h1
# h4 is an 8 GiB sparse file: a content hash that skips the holes instead of reading 8 GiB of
# zeros: sha256 over (index, bytes) of every 1 MiB block that is not all zeros, the blocks found
# through SEEK_DATA/SEEK_HOLE. The same content gives the same hash, however it is allocated.
sparse_sha() {
  "$venv/bin/python" - "$1" <<'EOF'
import hashlib, os, sys
B = 1 << 20
h, fd = hashlib.sha256(), os.open(sys.argv[1], os.O_RDONLY)
size, pos, last = os.fstat(fd).st_size, 0, -1
while pos < size:
    try:
        start = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError:
        break
    end = os.lseek(fd, start, os.SEEK_HOLE)
    for block in range(max(start // B, last + 1), (end + B - 1) // B):
        data = os.pread(fd, B, block * B)
        if data.count(0) != len(data):
            h.update(b"%d:" % block + data)
        last = block
    pos = end
print(h.hexdigest())
EOF
}
h4_sha=$(sparse_sha "$work/h4.img")
h3_sha=$(sha256sum "$work/h3.img" | cut -d' ' -f1)
plan_actions() { # plan_actions IMAGE: number of repair actions the offline CLI plans
  "$agent" plan "$1" --controller 0000:00:1f.2 --json 2>/dev/null \
    | "$venv/bin/python" -c 'import json,sys; p=json.load(sys.stdin)["plan"]; print(len(p["actions"]) + len(p["writes"]))'
}
needs_repair() { [ "$(plan_actions "$1")" -gt 0 ]; }
scans_clean() { [ "$(plan_actions "$1")" = 0 ]; }
check "h1 (ESXi 5) fixture needs a repair before the run" needs_repair "$work/h1.img"
check "h2 (encrypted 8.x) fixture needs a repair before the run" needs_repair "$work/h2.img"

# --- 3. ISO and report server -----------------------------------------------------------------
serve_port=$(free_port); sushy_port=$(free_port); dead_port=$(free_port)
mkdir -p "$work/www" "$work/reports"
token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$token" > "$work/token"; chmod 600 "$work/token"
preset="console=tty0 console=ttyS0,115200n8 rescue.after=poweroff rescue.idle=poweroff"
report_args="rescue.report=http://10.0.2.2:$serve_port/report rescue.token=$token rescue.net=dhcp"
cp "$iso" "$work/www/esxi-rescue-fleet.iso"
"$rescue_image" customize "$work/www/esxi-rescue-fleet.iso" --kargs "$preset $report_args" >/dev/null \
  || fail_now "rescue-image customize"
cp "$iso" "$work/www/esxi-rescue-fleet-plan.iso"
"$rescue_image" customize "$work/www/esxi-rescue-fleet-plan.iso" --kargs "$preset $report_args rescue.mode=plan" >/dev/null \
  || fail_now "rescue-image customize (plan)"
if "$rescue_image" serve --help >/dev/null 2>&1; then
  "$rescue_image" serve "$work/www" --listen "127.0.0.1:$serve_port" --reports "$work/reports" \
    --token-file "$work/token" > "$work/serve.log" 2>&1 &
  serve_pid=$!
  wait_for 20 grep -q '^serve: listening on http://' "$work/serve.log" || fail_now "rescue-image serve did not start: $(tail -3 "$work/serve.log")"
  server="rescue-image serve"
else
  # Until `rescue-image serve` lands: the ISO from Python's http.server, no report sink.
  (cd "$work/www" && exec "$venv/bin/python" -m http.server "$serve_port" --bind 127.0.0.1) > "$work/serve.log" 2>&1 &
  serve_pid=$!
  wait_for 20 curl -sfI "http://127.0.0.1:$serve_port/esxi-rescue-fleet.iso" || fail_now "http.server did not start"
  server="python http.server (stand-in)"
fi
check "ISO and report server is rescue-image serve" test "$server" = "rescue-image serve"
check "ISO served with HTTP Range (206)" \
  bash -c "curl -s -o /dev/null -w '%{http_code}' -r 0-2047 http://127.0.0.1:$serve_port/esxi-rescue-fleet.iso | grep -qx 206"

# --- 4. sushy-emulator -----------------------------------------------------------------------
cert=$root/target/fleet-cert/cert.pem key=$root/target/fleet-cert/key.pem
mkdir -p "$work/sushy-tmp"
cat > "$work/sushy.conf" <<EOF
SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'
SUSHY_EMULATOR_LISTEN_PORT = $sushy_port
SUSHY_EMULATOR_SSL_CERT = '$cert'
SUSHY_EMULATOR_SSL_KEY = '$key'
SUSHY_EMULATOR_LIBVIRT_URI = 'qemu:///system'
SUSHY_EMULATOR_STORAGE_POOL = '$pool'
SUSHY_EMULATOR_VMEDIA_VERIFY_SSL = False
SUSHY_EMULATOR_ALLOWED_INSTANCES = ['${uuid[h1]}', '${uuid[h2]}', '${uuid[h3]}', '${uuid[h4]}']
EOF
# sushy downloads each inserted image through tempfile: keep those under the work directory.
TMPDIR=$work/sushy-tmp "$venv/bin/sushy-emulator" --config "$work/sushy.conf" > "$work/sushy.log" 2>&1 &
sushy_pid=$!
bmc=127.0.0.1:$sushy_port
redfish() { curl -sf --cacert "$cert" "https://$bmc$1"; }
wait_for 30 redfish /redfish/v1/ || fail_now "sushy-emulator did not start: $(tail -3 "$work/sushy.log")"

# --- 5. libvirt domains ----------------------------------------------------------------------
for h in "${hosts[@]}"; do
  name=esxi-rescue-fleet-$run_id-$h
  # a domain left by a killed earlier run with the same UUID
  old=$("${virsh[@]}" domname "${uuid[$h]}" 2>/dev/null || true)
  if [ -n "$old" ] && [[ "$old" == esxi-rescue-fleet-* ]]; then
    "${virsh[@]}" destroy "$old" >/dev/null 2>&1; "${virsh[@]}" undefine --nvram "$old" >/dev/null 2>&1
  fi
  cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/$h-VARS.fd"
  : > "$work/$h.console.log"
  cat > "$work/$h.xml" <<EOF
<domain type='qemu'>
  <name>$name</name>
  <uuid>${uuid[$h]}</uuid>
  <memory unit='MiB'>768</memory>
  <vcpu>1</vcpu>
  <sysinfo type='smbios'>
    <system><entry name='manufacturer'>esxi-rescue fleet test</entry><entry name='serial'>${serial[$h]}</entry></system>
  </sysinfo>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
    <nvram>$work/$h-VARS.fd</nvram>
    <boot dev='hd'/>
    <smbios mode='sysinfo'/>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='$work/$h.img'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <interface type='user'><model type='virtio'/><rom enabled='no'/></interface>
    <serial type='file'><source path='$work/$h.console.log' append='on'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
  "${virsh[@]}" define "$work/$h.xml" >/dev/null || fail_now "virsh define $h"
  domains+=("$name")
done

# --- 6. inventory ----------------------------------------------------------------------------
cat > "$work/inventory.yml" <<EOF
all:
  children:
    esxi_rescue:
      vars:
        esxi_rescue_iso_url: http://127.0.0.1:$serve_port/esxi-rescue-fleet.iso
        esxi_rescue_plan_iso_url: http://127.0.0.1:$serve_port/esxi-rescue-fleet-plan.iso
        esxi_rescue_report_dir: $work/reports
        esxi_rescue_vmedia_category: Systems
        esxi_rescue_bmc: $bmc
        esxi_rescue_bmc_user: admin
        esxi_rescue_bmc_password: password
        esxi_rescue_bmc_validate_certs: true
        esxi_rescue_bmc_ca_path: $cert
        esxi_rescue_wait_retries: $wait_retries
        esxi_rescue_wait_delay: $wait_delay
        esxi_rescue_power_on_after: []
      hosts:
        h1:
          esxi_rescue_enabled: true
          esxi_rescue_system_id: ${uuid[h1]}
          esxi_rescue_console_log: $work/h1.console.log
        h2:
          esxi_rescue_enabled: true
          esxi_rescue_system_id: ${uuid[h2]}
          esxi_rescue_console_log: $work/h2.console.log
        h3:
          esxi_rescue_enabled: true
          esxi_rescue_system_id: ${uuid[h3]}
          esxi_rescue_console_log: $work/h3.console.log
        h4:
          esxi_rescue_enabled: true
          esxi_rescue_mode: plan
          esxi_rescue_system_id: ${uuid[h4]}
          esxi_rescue_console_log: $work/h4.console.log
        dead:
          esxi_rescue_enabled: true
          esxi_rescue_bmc: 127.0.0.1:$dead_port
          esxi_rescue_system_id: "1"
    refusals:
      # run 0: no guest boots; serial batches of 1 with max_fail_percentage 0
      vars:
        esxi_rescue_iso_url: http://127.0.0.1:$serve_port/esxi-rescue-fleet.iso
        esxi_rescue_bmc: 127.0.0.1:$dead_port
      hosts:
        r-dead:
          esxi_rescue_enabled: true
        r-nourl:
          esxi_rescue_enabled: true
          esxi_rescue_mode: plan
        r-later:
          esxi_rescue_enabled: true
        r-off: {}
EOF

play() { # play NAME ARGS...: one bounded ansible-playbook run, log in $work/NAME.log
  local name=$1; shift
  local t0; t0=$(date +%s)
  (cd fleet && exec timeout 900 "$venv/bin/ansible-playbook" -i "$work/inventory.yml" rescue.yml \
     -e "esxi_rescue_results_dir=$work/$name" "$@") > "$work/$name.log" 2>&1 &
  play_pid=$!
  wait "$play_pid"; local rc=$?
  play_pid=""
  cp "$work/$name.log" "target/fleet-$name.log" 2>/dev/null
  log "$name: ansible-playbook exit $rc in $(( $(date +%s) - t0 )) s (log: target/fleet-$name.log)"
  return $rc
}
row() { # row RUN HOST FIELD
  "$venv/bin/python" -c 'import json,sys
d=json.load(open(sys.argv[1]))
r=[r for r in d["rows"] if r["host"]==sys.argv[2]]
v=r[0].get(sys.argv[3]) if r else None
print("" if v is None else (json.dumps(v) if isinstance(v,(list,dict)) else v))' "$work/$1/summary.json" "$2" "$3" 2>/dev/null
}
verdict_is() { [ "$(row "$1" "$2" verdict)" = "$3" ]; }
rows_ok() { # rows_ok RUN N: summary JSON and CSV with one row per host
  "$venv/bin/python" - "$work/$1" "$2" <<'EOF'
import csv, json, sys
d, n = sys.argv[1], int(sys.argv[2])
j = json.load(open(d + "/summary.json"))
c = list(csv.DictReader(open(d + "/summary.csv")))
hosts = [r["host"] for r in j["rows"]]
assert j["hosts"] == n and len(hosts) == n == len(set(hosts)), hosts
assert [r["host"] for r in c] == hosts and all(r["verdict"] for r in c), c
EOF
}
guest_seconds() { # kernel time of the last console line of this run
  grep -ao '^\[ *[0-9]*\.[0-9]*\]' "$work/$1.console.log" | tail -1 | tr -d '[] '
}

# --- 7. run 0: refusals, batches and max_fail_percentage (no guest boots) ------------------
play run0a -e esxi_rescue_hosts=refusals --limit r-dead,r-nourl,r-later -e esxi_rescue_serial=1 \
  -e esxi_rescue_max_fail_percentage=0; rc0a=$?
check "run 0: a failed batch stops the play under max_fail_percentage 0 (exit non-zero)" test "$rc0a" -ne 0
check "run 0: batch 1, the unreachable BMC, does not stop the play (unreachable)" verdict_is run0a r-dead unreachable
check "run 0: batch 2, plan mode without esxi_rescue_plan_iso_url, fails (error)" verdict_is run0a r-nourl error
check "run 0: batch 3 never ran (not_run in the summary)" verdict_is run0a r-later not_run
check "run 0 summary JSON and CSV: one row per host (3)" rows_ok run0a 3
play run0b -e esxi_rescue_hosts=refusals --limit r-off; rc0b=$?
check "run 0: a host without esxi_rescue_enabled is refused before its BMC is contacted (not_enabled, exit non-zero)" \
  bash -c "[ $rc0b -ne 0 ] && [ '$(row run0b r-off verdict)' = not_enabled ]"

# --- 8. run 1: repair, 3 hosts + an unreachable BMC ------------------------------------------
play run1; rc1=$?
check "run 1: ansible-playbook exit 0 (dead BMC recorded, not failed)" test "$rc1" -eq 0
for h in h1 h2 h3 h4 dead; do
  log "run1: $h verdict $(row run1 $h verdict), $(row run1 $h seconds) s on the controller${uuid[$h]:+, guest clock at its last console line $(guest_seconds $h) s}"
done
check "h1 (ESXi 5, damaged) verdict repaired" verdict_is run1 h1 repaired
check "h2 (encrypted 8.x, passthru row) verdict repaired" verdict_is run1 h2 repaired
check "h3 (foreign Linux) verdict no_esxi_disk" verdict_is run1 h3 no_esxi_disk
check "h4 (plan mode, h1's damage) verdict planned" verdict_is run1 h4 planned
check "h4 ran the plan ISO (mode plan in its result line)" test "$(row run1 h4 mode)" = plan
check "h4 unchanged by the plan run (sha256 of its data extents)" test "$(sparse_sha "$work/h4.img")" = "$h4_sha"
check "dead BMC verdict unreachable" verdict_is run1 dead unreachable
check "dead BMC recorded within 30 s while the others went on" \
  "$venv/bin/python" -c "import sys; sys.exit(0 if float('$(row run1 dead seconds)' or 999) < 30 else 1)"
for h in "${hosts[@]}"; do
  check "$h result line carries its SMBIOS UUID and serial" \
    bash -c "[ '$(row run1 $h uuid)' = '${uuid[$h]}' ] && [ '$(row run1 $h serial)' = '${serial[$h]}' ] && [ '$(row run1 $h source)' = console ]"
done
check "h1 scans clean after the repair (plan: nothing to do)" scans_clean "$work/h1.img"
check "h2 scans clean after the repair (plan: nothing to do)" scans_clean "$work/h2.img"
check "h3 (foreign) sha256 unchanged" test "$(sha256sum "$work/h3.img" | cut -d' ' -f1)" = "$h3_sha"
ejected() {
  redfish "/redfish/v1/Systems/${uuid[$1]}/VirtualMedia/Cd" \
    | "$venv/bin/python" -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if not d.get("Inserted") and not d.get("Image") else 1)' \
    && ! "${virsh[@]}" dumpxml "esxi-rescue-fleet-$run_id-$1" | grep -q "device='cdrom'"
}
boot_hdd() {
  redfish "/redfish/v1/Systems/${uuid[$1]}" \
    | "$venv/bin/python" -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["Boot"]["BootSourceOverrideTarget"]=="Hdd" else 1)'
}
shut_off() { [ "$("${virsh[@]}" domstate "esxi-rescue-fleet-$run_id-$1" | head -1)" = "shut off" ]; }
for h in "${hosts[@]}"; do
  check "$h media ejected (Redfish and libvirt)" ejected "$h"
  check "$h boot target back to Hdd" boot_hdd "$h"
done
sink_has() { # sink_has HOST: a report stored by the server under the host's SMBIOS UUID
  compgen -G "$work/reports/${uuid[$1]}/*.json" >/dev/null \
    && grep -q "${uuid[$1]}" "$(ls "$work/reports/${uuid[$1]}/"*.json | tail -1)"
}
check "h1 report in the server's sink under its SMBIOS UUID" sink_has h1
check "h2 report in the server's sink under its SMBIOS UUID" sink_has h2
check "h4 (plan) report in the server's sink under its SMBIOS UUID" sink_has h4
check "run 1 summary JSON and CSV: one row per host (5)" rows_ok run1 5
n_vol=$("${virsh[@]}" vol-list "$pool" 2>/dev/null | grep -c . || true)
log "pool $pool holds $n_vol volume(s) left by sushy's inserts (removed at cleanup)"

# --- 9. run 2: the repaired hosts again → nothing to do, no loop -----------------------------
one_boot() { # exactly one result line since run 2 started, and the domain is off
  [ "$(tail -c +$(( ${before[$1]} + 1 )) "$work/$1.console.log" | grep -ac 'ESXI-RESCUE-RESULT v1 ')" = 1 ] && shut_off "$1"
}
declare -A before
for h in h1 h2; do
  before[$h]=$(stat -c %s "$work/$h.console.log")
done
play run2 --limit h1,h2; rc2=$?
check "run 2: ansible-playbook exit 0" test "$rc2" -eq 0
for h in h1 h2; do
  log "run2: $h verdict $(row run2 $h verdict), $(row run2 $h seconds) s on the controller"
  check "$h second run: nothing_to_do" verdict_is run2 "$h" nothing_to_do
  check "$h second run: one boot, one result, powered off (no loop)" one_boot "$h"
done
check "h1 still scans clean after the second run" scans_clean "$work/h1.img"
check "h2 still scans clean after the second run" scans_clean "$work/h2.img"
check "run 2 summary JSON and CSV: one row per host (2)" rows_ok run2 2

# --- 10. run 3: a powered-on host with esxi_rescue_force_off false is refused, untouched -----
name3=esxi-rescue-fleet-$run_id-h3
"${virsh[@]}" start "$name3" >/dev/null 2>&1
wait_for 20 bash -c "[ \"\$(${virsh[*]} domstate $name3 | head -1)\" = running ]"
play run3 --limit h3 -e esxi_rescue_force_off=false; rc3=$?
check "run 3: a running host is refused with esxi_rescue_force_off false (powered_on, exit non-zero)" \
  bash -c "[ $rc3 -ne 0 ] && [ '$(row run3 h3 verdict)' = powered_on ]"
check "run 3: the refused host was left running, no media inserted" \
  bash -c "[ \"\$(${virsh[*]} domstate $name3 | head -1)\" = running ] && ! ${virsh[*]} dumpxml $name3 | grep -q \"device='cdrom'\""
"${virsh[@]}" destroy "$name3" >/dev/null 2>&1

cp "$work"/h?.console.log target/ 2>/dev/null
for h in "${hosts[@]}"; do mv "target/$h.console.log" "target/fleet-$h.console.log" 2>/dev/null; done
cp "$work/run1/summary.json" target/fleet-summary-run1.json 2>/dev/null
cp "$work/run1/summary.csv" target/fleet-summary-run1.csv 2>/dev/null
finish
