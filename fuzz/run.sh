#!/usr/bin/env bash
# Fuzzes the manifest reader and the journal reader with libFuzzer (cargo fuzz). The machine's
# stable toolchain is enough: RUSTC_BOOTSTRAP=1 lets it use the nightly-only sanitizer flags.
# Usage: fuzz/run.sh [seconds per target]   (the first build takes several minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in journal manifest; do
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10
done
