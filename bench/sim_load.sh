#!/usr/bin/env bash
# How many simple requests per second the simulator answers on this machine: wrk (Debian's
# package) against a task-status GET, the request a runner sends most. Prints wrk's report and the
# simulator's peak RSS. Usage: bench/sim_load.sh [seconds] [connections]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-10}"
connections="${2:-64}"
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
work="$(mktemp -d)"
"$root/target/release/kling-batch" sim --port 0 --time-scale 1000 >"$work/url" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do [ -s "$work/url" ] && break; sleep 0.1; done
url="$(head -n 1 "$work/url")"
auth="Authorization: Bearer sk-sim-local"
id="$(curl -s -X POST "$url/api/v1/kling/text_to_video" -H "$auth" \
  -d '{"model":"kling-3.0","prompt":"a lake","duration_seconds":5}' | sed -E 's/.*"id":"([^"]+)".*/\1/')"
echo "machine: $(nproc) cores; wrk -t2 -c$connections -d${seconds}s GET /api/v1/kling/text_to_video/{id}"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -H "$auth" "$url/api/v1/kling/text_to_video/$id"
echo "simulator peak RSS after the status load: $(grep VmHWM /proc/$pid/status | awk '{print $2, $3}')"

# Memory per task: create tasks as fast as wrk can (each create is a new task), then compare RSS.
"$root/target/release/kling-batch" sim --port 0 --time-scale 0.001 --balance-cents 100000000000 >"$work/url2" 2>/dev/null &
pid2=$!
trap 'kill $pid $pid2 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do [ -s "$work/url2" ] && break; sleep 0.1; done
url2="$(head -n 1 "$work/url2")"
before=$(grep VmRSS /proc/$pid2/status | awk '{print $2}')
echo "creates: wrk -t2 -c$connections -d${seconds}s POST /api/v1/kling/text_to_video"
wrk -t2 -c"$connections" -d"${seconds}s" -s "$root/bench/create_tasks.lua" "$url2/api/v1/kling/text_to_video" | grep -E "requests in|Requests/sec|Non-2xx"
tasks=$(curl -s "$url2/__sim/stats" | sed -E 's/.*"tasks_created":([0-9]+).*/\1/')
after=$(grep VmRSS /proc/$pid2/status | awk '{print $2}')
echo "tasks created: $tasks; RSS $before kB -> $after kB; about $(( (after - before) * 1024 / (tasks > 0 ? tasks : 1) )) bytes per task"
