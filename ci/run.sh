#!/usr/bin/env bash
# What CI runs on a fresh Debian 12 machine: the README's test command, nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
bash scripts/test.sh
