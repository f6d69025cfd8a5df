#!/usr/bin/env bash
# Fetches the Debian boot-chain inputs into a cache directory and extracts each package there:
#   CACHE/<pkg>_<ver>_<arch>.deb   the downloaded package
#   CACHE/root-<pkg>/              its extracted tree (dpkg-deb -x; no maintainer scripts run)
#   CACHE/packages.txt             "<package> <version>" per line
#   CACHE/kernel-version           e.g. 6.1.0-37-amd64
# Usage: scripts/fetch-debian.sh [CACHE_DIR]   (default out/cache). Prints the kernel version.
# Idempotent, and offline once the cache is complete: apt is only consulted when a package is
# missing from the cache. To move to a newer kernel, delete CACHE/packages.txt and run again.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${1:-out/cache}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo

# Host tools the image builder and its tests need (installed the way scripts/setup.sh does).
HOST_PACKAGES=(kmod xz-utils cpio qemu-system-x86 ovmf seabios ipxe-qemu xorriso mtools gdisk grub-common)
missing=()
for p in "${HOST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "fetch-debian: installing host tools ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# shim-helpers-amd64-signed: MokManager (mmx64.efi.signed), which shim starts on a pending MOK change.
BOOT_PACKAGES=(shim-signed shim-helpers-amd64-signed grub-efi-amd64-signed grub-efi-amd64-bin grub-pc-bin busybox-static)

# True when the cache holds every package named in packages.txt, downloaded and extracted.
cache_complete() {
  [ -s "$CACHE/packages.txt" ] && [ -s "$CACHE/kernel-version" ] || return 1
  local name ver
  while read -r name ver; do
    [ -d "$CACHE/root-$name" ] || return 1
    compgen -G "$CACHE/${name}_*.deb" >/dev/null || return 1
  done <"$CACHE/packages.txt"
  [ "$(wc -l <"$CACHE/packages.txt")" -eq $((${#BOOT_PACKAGES[@]} + 1)) ]
}

if cache_complete; then
  cat "$CACHE/kernel-version"
  exit 0
fi

# apt lists: refresh only when missing or older than a day.
lists_fresh() {
  local newest
  newest=$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n1)
  [ -n "$newest" ]
}
if ! lists_fresh || ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
  echo "fetch-debian: apt-get update" >&2
  $SUDO apt-get update -qq
fi

# linux-image-amd64 is a metapackage; the real kernel package is its linux-image-* dependency.
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$KPKG" ] || { echo "fetch-debian: cannot resolve the linux-image-amd64 dependency" >&2; exit 1; }

: >"$CACHE/packages.txt.new"
for pkg in "$KPKG" "${BOOT_PACKAGES[@]}"; do
  ver=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
  [ -n "$ver" ] && [ "$ver" != "(none)" ] || { echo "fetch-debian: no candidate for $pkg" >&2; exit 1; }
  # Debian file names escape the epoch colon as %3a.
  deb=$(compgen -G "$CACHE/${pkg}_${ver//:/%3a}_*.deb" | head -n1 || true)
  if [ -z "$deb" ]; then
    echo "fetch-debian: downloading $pkg $ver" >&2
    # As root, apt's _apt sandbox user cannot write into the cache dir: download as root quietly.
    sandbox=(); [ "$(id -u)" -ne 0 ] || sandbox=(-o APT::Sandbox::User=root)
    (cd "$CACHE" && apt-get download -q "${sandbox[@]}" "$pkg=$ver" >/dev/null)
    deb=$(compgen -G "$CACHE/${pkg}_${ver//:/%3a}_*.deb" | head -n1)
    rm -rf "$CACHE/root-$pkg"
  fi
  # Old versions of the same package go, so the cache names exactly one of each.
  for old in "$CACHE/${pkg}"_*.deb; do
    [ "$old" = "$deb" ] || rm -f "$old"
  done
  if [ ! -d "$CACHE/root-$pkg" ]; then
    dpkg-deb -x "$deb" "$CACHE/root-$pkg.tmp"
    mv "$CACHE/root-$pkg.tmp" "$CACHE/root-$pkg"
  fi
  echo "$pkg $ver" >>"$CACHE/packages.txt.new"
done
mv "$CACHE/packages.txt.new" "$CACHE/packages.txt"

# The kernel version is the name of the (only) modules directory of the kernel package.
KVER=$(basename "$(find "$CACHE/root-$KPKG/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n1)")
[ -f "$CACHE/root-$KPKG/boot/vmlinuz-$KVER" ] || { echo "fetch-debian: no boot/vmlinuz-$KVER in $KPKG" >&2; exit 1; }
ln -sfn "root-$KPKG" "$CACHE/kernel-root"
echo "$KVER" >"$CACHE/kernel-version"
echo "$KVER"
