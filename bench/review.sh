#!/usr/bin/env bash
# The review app over a 10,008-clip run (issue 27): makes the run on the simulator (834 prompts ×
# 12 parameter combinations, 4 KB videos), starts `kling-batch review` on it, and measures in
# Chromium (bench/review_scroll.mjs) the page's readiness and the videos it loads at open and
# while scrolling. Needs what tests/review/run.sh installs (chromium, playwright-core).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$root/target/review-bench"
cache="$HOME/.cache/kling-batch/node"
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/kling-batch"
mkdir -p "$work"
if [ ! -s "$work/out/results.csv" ]; then
  rm -rf "$work/out"
  {
    echo 'defaults: { model: kling-3.0, duration_seconds: 5 }'
    echo 'prompts:'
    echo '  - prompt: "scene {n}"'
    printf '    vars: { n: ['; seq -s, 1 834 | tr -d '\n'; echo '] }'
    echo 'matrix: { aspect_ratio: ["16:9", "9:16", "1:1"], duration_seconds: [5, 10], enable_sound: [false, true] }'
  } >"$work/big.yaml"
  "$bin" sim --port 0 --time-scale 100000 --video-bytes 4000 --balance-cents 100000000 >"$work/sim.url" 2>/dev/null &
  sim=$!
  trap 'kill $sim 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do [ -s "$work/sim.url" ] && break; sleep 0.1; done
  RUNAPI_API_KEY=sk-sim-local "$bin" run "$work/big.yaml" --out "$work/out" --api-base "$(head -1 "$work/sim.url")" \
    --concurrency 256 --rate 5000 --max-spend none -q 2>"$work/run.log"
  kill $sim 2>/dev/null || true
fi
"$bin" review "$work/out" >"$work/address" 2>/dev/null &
app=$!
trap 'kill $app 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do [ -s "$work/address" ] && break; sleep 0.1; done
address="$(head -1 "$work/address")"
origin="${address%%/?token=*}"
state_bytes=$(curl -s "$origin/api/state" | wc -c)
state_ms=$(curl -s -o /dev/null -w '%{time_total}' "$origin/api/state")
node "$root/bench/review_scroll.mjs" "$cache/node_modules/playwright-core" "$address" | tee "$work/result.json"
echo "{\"api_state_bytes\": $state_bytes, \"api_state_seconds\": $state_ms}"
