#!/usr/bin/env bash
# The MCP server (issue 28) through a client nobody here wrote: the official Python SDK (`mcp` on
# PyPI, in its own venv under target/), over stdio and streamable HTTP, against a simulator this
# script starts (slow enough that a sweep is seen running). See client.py for what is checked;
# adversary.py plays an agent a prompt injection has turned, on a simulator of its own.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/target/mcp-venv"
mcp_version="2.3.0"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import mcp, importlib.metadata as m; assert m.version('mcp') == '$mcp_version'" 2>/dev/null; then
  python3 -m venv "$venv"
  if ! "$venv/bin/pip" install --quiet --disable-pip-version-check "mcp==$mcp_version"; then
    echo "MCP TEST FAILED: could not install mcp==$mcp_version from PyPI (is PyPI reachable?)" >&2
    exit 1
  fi
fi
cargo build --quiet --manifest-path "$root/Cargo.toml"
work="$root/target/mcp-test"
rm -rf "$work" && mkdir -p "$work"
key="sk-mcp-canary-$$-7d1e"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; pkill -f "$work/" 2>/dev/null || true' EXIT
start_sim() { # name → sets url to the simulator's base URL
  "$root/target/debug/kling-batch" sim --port 0 --time-scale 60 --api-key "$key" --video-bytes 20000 --balance-cents 100000 >"$work/$1.url" 2>"$work/$1.sim.log" &
  pids+=($!)
  for _ in $(seq 1 100); do
    [ -s "$work/$1.url" ] && break
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/$1.sim.log" >&2; exit 1; }
    sleep 0.1
  done
  url=$(head -1 "$work/$1.url")
}
status=0
start_sim sdk
timeout 600 "$venv/bin/python" "$root/tests/mcp/client.py" "$root/target/debug/kling-batch" "$url" "$key" "$work" || status=1
# The adversary (a turned agent) on a simulator of its own, so that its money adds up alone.
start_sim adversary
timeout 600 "$venv/bin/python" "$root/tests/mcp/adversary.py" "$root/target/debug/kling-batch" "$url" "$key" "$work/adversary" || status=1
exit $status
