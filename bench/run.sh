#!/usr/bin/env bash
# The benchmarks of issue 7, in one command: builds kling-batch in release mode, makes a venv with
# RunAPI's official Python SDK (the baseline), then runs every scenario against the simulator as
# a separate process and writes the table into BENCHMARKS.md. About 6 minutes on 2 cores.
# Usage: bench/run.sh [--quick] [--no-baseline] [--only S1,S2,S3,S4,P1,...,P5,D1,D2,...] [--no-write]
#        [--repeat N]  (each scenario N times in a row; every figure printed run by run)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/bench-venv"
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time is missing: apt-get install time" >&2; exit 1; }
command -v curl >/dev/null || { echo "bench: curl is missing: apt-get install curl" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import runapi.kling" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "runapi-kling==0.5.1"
fi
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
exec "$venv/bin/python" "$root/bench/bench.py" "$root/target/release/kling-batch" "$venv/bin/python" "$@"
