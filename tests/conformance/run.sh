#!/usr/bin/env bash
# Conformance: RunAPI's official Python SDK (runapi-kling, from PyPI) drives the simulator.
# Creates its own venv under target/, so nothing is installed by hand. Fails loudly if PyPI
# cannot be reached: the check must not pass without having run.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/target/conformance-venv"
sdk_version="0.5.1"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import runapi.kling" 2>/dev/null; then
  python3 -m venv "$venv"
  if ! "$venv/bin/pip" install --quiet --disable-pip-version-check "runapi-kling==$sdk_version"; then
    echo "CONFORMANCE FAILED: could not install runapi-kling==$sdk_version from PyPI (is PyPI reachable?)" >&2
    exit 1
  fi
fi

cargo build --quiet --manifest-path "$root/Cargo.toml"
work="$(mktemp -d)"
key="sk-conformance-$$"
"$root/target/debug/kling-batch" sim --port 0 --time-scale 1000 --api-key "$key" >"$work/url" 2>"$work/log" &
sim_pid=$!
cleanup() { kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The simulator prints its URL once it listens.
for _ in $(seq 1 100); do
  [ -s "$work/url" ] && break
  if ! kill -0 "$sim_pid" 2>/dev/null; then cat "$work/log" >&2; exit 1; fi
  sleep 0.1
done
url="$(head -n 1 "$work/url")"
[ -n "$url" ] || { echo "CONFORMANCE FAILED: the simulator printed no URL" >&2; cat "$work/log" >&2; exit 1; }

echo "conformance: runapi-kling $sdk_version against $url"
"$venv/bin/python" "$root/tests/conformance/sdk_conformance.py" "$url" "$key"
