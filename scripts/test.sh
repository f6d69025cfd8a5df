#!/usr/bin/env bash
# Runs every test: formatting, lints, unit and integration tests (synthetic ESXi disks), the
# QEMU boots (TCG) of the agent as PID 1, and a short smoke run of every fuzz target. Installs
# missing prerequisites first (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/fetch-debian.sh
bash scripts/build-agent.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== cargo test (including the QEMU boots marked ignored)"
mkdir -p target/agent-boots
rm -f target/agent-boots/TIMINGS
cargo test --locked --workspace -- --include-ignored 2>&1 | tee target/test.log
passed=$(grep -Eo 'test result: ok\. [0-9]+ passed' target/test.log | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test.log | awk '{s+=$1} END {print s+0}')
cat target/agent-boots/TIMINGS 2>/dev/null || true
echo "== fuzz smoke (every target, 10 s each; scripts/fuzz.sh TARGET SECONDS for longer runs)"
bash scripts/fuzz.sh --smoke 10 2>&1 | tee target/fuzz-smoke.log | grep -E '^fuzz |FAILED|panicked'
fuzz_ok=$(grep -c '^fuzz .*no crash' target/fuzz-smoke.log || true)
passed=$((passed + fuzz_ok))
echo "== fleet test (Ansible role over Redfish: sushy-tools + libvirt + QEMU TCG; docs/fleet.md)"
fleet_rc=0
bash scripts/fleet-test.sh 2>&1 | tee target/fleet.log || fleet_rc=$?
fleet_line=$(grep -E '^fleet: [0-9]+ checks passed, [0-9]+ failed$' target/fleet.log | tail -1 || true)
fleet_ok=$(echo "$fleet_line" | awk '{print $2}')
fleet_bad=$(echo "$fleet_line" | awk '{print $5}')
[ -n "$fleet_line" ] || fleet_rc=1
passed=$((passed + ${fleet_ok:-0}))
failed=$((failed + ${fleet_bad:-1}))
echo "tests: $passed passed, $failed failed"
[ "$fleet_rc" -eq 0 ] || { echo "test: the fleet test failed (target/fleet.log)"; exit 1; }
