#!/usr/bin/env bash
# Builds the static rescue-agent into out/rescue-agent: musl, or static glibc when the musl
# target cannot be installed (say which).
set -euo pipefail
cd "$(dirname "$0")/.."
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
echo "build: out/rescue-agent ($flavour, $(stat -c %s out/rescue-agent) bytes)"
