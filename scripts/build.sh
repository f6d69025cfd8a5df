#!/usr/bin/env bash
# Builds everything into out/: the static rescue-agent, then the boot media (ISO, USB image,
# PXE files) from Debian's signed boot chain. Installs missing prerequisites first (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build-agent.sh
if [ -x image/build.sh ]; then
  bash image/build.sh
else
  echo "build: the boot media builder (image/build.sh) is not in this tree yet"
fi
