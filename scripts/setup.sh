#!/usr/bin/env bash
# Installs what the build and the tests need, idempotently: Debian packages and the musl target.
# Safe to run again; does nothing when everything is present.
set -euo pipefail

APT_PACKAGES=(gdisk dosfstools mtools musl-tools xxd python3-cryptography kmod xz-utils cpio qemu-system-x86 ovmf seabios ipxe-qemu xorriso grub-pc-bin grub-efi-amd64-bin)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  echo "setup: adding rust target x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1 || echo "setup: musl target unavailable; build.sh falls back to static glibc"
fi
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" >/dev/null 2>&1 || true
done

# The fleet test's prerequisites (libvirt, the Ansible/sushy-tools venv, TLS certificate).
bash "$(dirname "$0")/setup-fleet.sh"
