#!/usr/bin/env bash
# Benchmarks (numbers go to docs/benchmarks.md by hand; budgets are checked here, not in unit tests).
#   1. scan and repair of a 32 GiB sparse ESXi 7.x image whose GPT was compacted
#   2. repair of a bank whose state.tgz is 64 MiB (time and peak memory)
#   3. size of the static release binary
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if cargo build --release --locked -p rescue-agent -p esxi-fixtures --target x86_64-unknown-linux-musl; then
  out=target/x86_64-unknown-linux-musl/release
else
  cargo build --release --locked -p rescue-agent -p esxi-fixtures
  out=target/release
fi
BIN=$out/rescue-agent MK=$out/mkfixture
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

ms() { local s=$(date +%s%N); "$@" >/dev/null; echo $(( ($(date +%s%N) - s) / 1000000 )); }
best_of() { local n=$1; shift; local best=""; for _ in $(seq "$n"); do local t; t=$(ms "$@"); if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi; done; echo "$best"; }

echo "== binary"
echo "rescue-agent: $(stat -c %s "$BIN") bytes ($(file -b "$BIN" | cut -d, -f1-2))"

echo "== 32 GiB sparse ESXi 7.x image, GPT compacted (sorted)"
"$MK" esxi7 --size 32G --damage compact-sorted "$work/d32.img" >/dev/null
cp --sparse=always "$work/d32.img" "$work/pristine.img"
echo "scan:   $(best_of 5 "$BIN" scan "$work/d32.img") ms (best of 5)"
echo "plan:   $(best_of 5 "$BIN" plan "$work/d32.img") ms (best of 5)"
total=0
for i in 1 2 3; do
  cp --sparse=always "$work/pristine.img" "$work/d32.img"
  t=$(ms "$BIN" repair "$work/d32.img"); total=$((total + t)); last=$t
done
echo "repair: $last ms (last of 3; mean $((total / 3)) ms)"
t=$(ms "$BIN" undo "$work/d32.img"); echo "undo:   $t ms"

echo "== 64 MiB state.tgz repair"
bash scripts/bench-state64.sh "$BIN" "$MK" "$work"
echo "== ConfigStore repair (1 MiB store)"
bash scripts/bench-configstore.sh "$BIN" "$MK" "$work"
