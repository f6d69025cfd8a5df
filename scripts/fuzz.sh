#!/usr/bin/env bash
# Runs one coverage-guided fuzz target (libFuzzer, rescue-agent/fuzz) for SECONDS.
#   scripts/fuzz.sh TARGET [SECONDS]      e.g. scripts/fuzz.sh configstore 300
#   scripts/fuzz.sh --list
#   scripts/fuzz.sh --smoke [SECONDS]     every target for SECONDS each (the test command's run)
# Built with the stable toolchain and plain cargo (the same instrumentation `cargo fuzz` uses,
# without a sanitizer): no nightly, no cargo-fuzz install. The corpus is seeded from the
# synthetic fixtures and ../shared/fixtures/real and kept in target/fuzz-corpus/TARGET; crashes
# land in target/fuzz-artifacts/TARGET. Budgets: 1 GiB per allocation, 2 GiB RSS, 10 s per input.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS=(gpt esxconf archive envelope configstore bootcfg undo_record probe fat_check)
SHARED=../shared/fixtures/real

if [ "${1:-}" = --list ]; then printf '%s\n' "${TARGETS[@]}"; exit 0; fi

build() {
  RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing" \
    cargo build --release --locked --manifest-path rescue-agent/fuzz/Cargo.toml \
      --target x86_64-unknown-linux-gnu --target-dir target/fuzz --bins >&2
}

# Seeds: real ESXi bytes and the synthetic fixtures' pieces, per target.
seed() {
  local t=$1 dir=target/fuzz-corpus/$1
  mkdir -p "$dir"
  case "$t" in
    gpt) cp "$SHARED/gpt_esxi.bin" "$dir/real-gpt-head" 2>/dev/null || true
         cp "$SHARED/esxi67-installer/gptstart.bin" "$dir/installer-gptstart" 2>/dev/null || true ;;
    esxconf) cp "$SHARED"/esxconf/*.conf "$dir/" 2>/dev/null || true
             cp "$SHARED/configstore-7.0.2/esx.conf" "$dir/real-702-esx.conf" 2>/dev/null || true ;;
    archive) cp "$SHARED/ve-70u2/local.tgz" "$dir/real-local.tgz" 2>/dev/null || true ;;
    envelope) cp "$SHARED/ve-70u2/local.tgz.ve" "$SHARED/ve-70u2/encryption.info" "$dir/" 2>/dev/null || true ;;
    configstore) cp "$SHARED/configstore-7.0.2/current-store-1" "$dir/real-current-store-1" 2>/dev/null || true
                 cp "$SHARED/configstore-7.0.2/datafile-store" "$dir/real-datafile-store" 2>/dev/null || true ;;
    bootcfg) cp "$SHARED"/bootcfg/*.cfg "$dir/" 2>/dev/null || true ;;
    undo_record) printf 'not a tar' >"$dir/empty" ;;
    probe) head -c 131072 "$SHARED/gpt_esxi.bin" >"$dir/real-gpt-head" 2>/dev/null || true ;;
    fat_check) # A fresh FAT16 volume's metadata with two files, as mkfs.fat and mtools write it.
      local vol=$dir/.volume.img
      rm -f "$vol" && mkfs.fat -F 16 -s 1 -C "$vol" 8192 >/dev/null &&
        printf 'kernel=b.b00\n' >"$dir/.boot.cfg" && mcopy -i "$vol" "$dir/.boot.cfg" ::BOOT.CFG &&
        head -c 65536 /dev/zero | tr '\0' x >"$dir/.state" && mcopy -i "$vol" "$dir/.state" ::STATE.TGZ &&
        head -c 65536 "$vol" >"$dir/mkfs-two-files" || true
      rm -f "$vol" "$dir/.boot.cfg" "$dir/.state" ;;
  esac
  [ -n "$(ls -A "$dir")" ] || printf 'seed' >"$dir/seed"
}

run() {
  local t=$1 secs=$2
  seed "$t"
  mkdir -p "target/fuzz-artifacts/$t"
  local log=target/fuzz-artifacts/$t/last-run.log
  "target/fuzz/x86_64-unknown-linux-gnu/release/$t" "target/fuzz-corpus/$t" -max_total_time="$secs" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="target/fuzz-artifacts/$t/" >"$log" 2>&1 || {
      echo "fuzz $t: FAILED (see $log)"; tail -40 "$log"; return 1; }
  local execs
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  echo "fuzz $t: ${execs} executions in ${secs} s, no crash, hang or over-budget allocation"
}

if [ "${1:-}" = --smoke ]; then
  secs=${2:-10}
  build
  for t in "${TARGETS[@]}"; do run "$t" "$secs"; done
  exit 0
fi
target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS] | --smoke [SECONDS] | --list}
secs=${2:-60}
printf '%s\n' "${TARGETS[@]}" | grep -qx "$target" || { echo "unknown target $target (--list)"; exit 2; }
build
run "$target" "$secs"
