#!/usr/bin/env bash
# Builds the boot media into out/ (called by scripts/build.sh after out/rescue-agent):
#   1. scripts/fetch-debian.sh: signed kernel, shim, Debian's signed GRUB, grub-pc-bin, busybox
#      into out/cache (offline once cached);
#   2. out/initrd.img: out/rescue-agent as /init, the storage modules, busybox (xz);
#   3. rescue-image build --out out: esxi-rescue.iso, esxi-rescue-usb.img, pxe/, manifest.json.
# SOURCE_DATE_EPOCH (default: the last commit's time) makes every artifact reproducible.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f out/rescue-agent ] || { echo "image/build.sh: out/rescue-agent is missing (run scripts/build.sh)" >&2; exit 1; }
KVER=$(bash scripts/fetch-debian.sh out/cache)
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 1767225600)
fi
export SOURCE_DATE_EPOCH
cargo build --locked -p rescue-image
bin=${CARGO_TARGET_DIR:-target}/debug/rescue-image
"$bin" initramfs --agent out/rescue-agent --kernel-root out/cache/kernel-root \
  --busybox out/cache/root-busybox-static/bin/busybox --compress xz --out out/initrd.img
"$bin" build --out out --cache out/cache --initrd out/initrd.img
echo "image/build.sh: media for kernel $KVER in out/ (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
