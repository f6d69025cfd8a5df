#!/usr/bin/env bash
# Repair of one encrypted 8.x bank whose ConfigStore is about 1 MiB (the real 7.0U2a store plus
# filler rows) with the boot controller's pci_devices row set to OWNER_PASSTHRU: wall time and
# peak memory of `rescue-agent repair`. Usage: bench-configstore.sh BIN MKFIXTURE WORKDIR
set -euo pipefail
BIN=$1 MK=$2 work=$3
img=$work/cs1m.img
"$MK" esxi7 --size 16G --flavor encrypted --store-pci 5:0000:03:00.0:OWNER_PASSTHRU \
  --store-filler-kib 700 "$img" >/dev/null
cp --sparse=always "$img" "$work/cs1m-pristine.img"
size=$("$BIN" scan --json --controller 0000:03:00.0 "$img" | python3 -c '
import json, sys
d = json.load(sys.stdin)["disks"][0]["esxi"]["banks"][0]["config"]
print(d["state_tgz_bytes"])')
echo "state.tgz: $size bytes (ConfigStore 1.1 MiB: the real 132 KiB store plus 700 filler rows)"
best=""
for _ in 1 2 3; do
  cp --sparse=always "$work/cs1m-pristine.img" "$img"
  s=$(date +%s%N)
  /usr/bin/time -f "%M" -o "$work/rss" "$BIN" repair --controller 0000:03:00.0 "$img" >/dev/null
  t=$(( ($(date +%s%N) - s) / 1000000 ))
  if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; rss=$(cat "$work/rss"); fi
done
echo "repair (1 MiB ConfigStore, encrypted): $best ms (best of 3), peak RSS $rss KiB"
