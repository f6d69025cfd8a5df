#!/usr/bin/env bash
# Builds everything into out/: the static rescue-agent (musl; static glibc as a fallback).
# Installs missing prerequisites first (scripts/setup.sh, idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

mkdir -p out
if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  cargo build --release --locked -p rescue-agent --target x86_64-unknown-linux-musl
  cp target/x86_64-unknown-linux-musl/release/rescue-agent out/rescue-agent
  flavour="static musl"
else
  RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked -p rescue-agent --target x86_64-unknown-linux-gnu
  cp target/x86_64-unknown-linux-gnu/release/rescue-agent out/rescue-agent
  flavour="static glibc (musl target unavailable)"
fi
size=$(stat -c %s out/rescue-agent)
echo "build: out/rescue-agent ($flavour, $size bytes)"
if [ -x image/build.sh ]; then
  bash image/build.sh
else
  echo "build: the ISO/USB/PXE image builder (image/) is not part of this tree yet"
fi
