#!/usr/bin/env bash
# The review app in a real browser (issue 27): runs the example sweep on the simulator, starts
# `kling-batch review` on it, and drives Debian's chromium with Playwright (playwright-core from
# npm, installed once into ~/.cache/kling-batch/node) to rate, pick and vote with the keyboard,
# reload, and open a second tab (review.mjs). Then `kling-batch report` must carry the ratings into
# results.csv and write review.csv. Screenshots: target/review-test/review-grid.png, -compare.png.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$root/target/review-test"
cache="$HOME/.cache/kling-batch/node"
playwright_version="1.65.2"
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "review test: installing Debian's ${need_apt[*]}"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if [ ! -f "$cache/node_modules/playwright-core/package.json" ] \
   || ! grep -q "\"version\": \"$playwright_version\"" "$cache/node_modules/playwright-core/package.json"; then
  echo "review test: installing playwright-core $playwright_version (once, into ~/.cache/kling-batch/node)"
  mkdir -p "$cache"
  (cd "$cache" && npm install --no-audit --no-fund --silent "playwright-core@$playwright_version" >/dev/null)
fi

cargo build --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/debug/kling-batch"
rm -rf "$work" && mkdir -p "$work"
"$bin" run "$root/manifests/example.yaml" --out "$work/out" --simulate -q 2>"$work/run.log" || {
  echo "REVIEW TEST FAILED: the run did not finish" >&2; cat "$work/run.log" >&2; exit 1; }

"$bin" review "$work/out" --reviewer ann >"$work/address" 2>"$work/review.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  [ -s "$work/address" ] && break
  kill -0 "$server" 2>/dev/null || { echo "REVIEW TEST FAILED: the app did not start" >&2; cat "$work/review.log" >&2; exit 1; }
  sleep 0.1
done
address="$(head -n 1 "$work/address")"
[ -n "$address" ] || { echo "REVIEW TEST FAILED: the app printed no address within 30 s" >&2; exit 1; }
failed=0
timeout 180 node "$root/tests/review/review.mjs" "$cache/node_modules/playwright-core" "$address" "$work" >"$work/result.json" || failed=1
cat "$work/result.json"
kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true

# What was said in the browser reaches results.csv (rating, picked) and review.csv.
"$bin" report "$work/out" >/dev/null 2>>"$work/review.log" || { echo "REVIEW TEST FAILED: report failed" >&2; failed=1; }
first=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get('first',''))" "$work/result.json")
second=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get('second',''))" "$work/result.json")
if ! python3 - "$work/out/results.csv" "$first" "$second" <<'PY'
import csv, sys
rows = {r["job_id"]: r for r in csv.DictReader(open(sys.argv[1]))}
first, second = rows[sys.argv[2]], rows[sys.argv[3]]
assert first["rating"] == "4.00" and first["picked"] == "false", first
assert second["rating"] == "2.00" and second["picked"] == "true", second
assert sum(int(r["wins"] or 0) + int(r["losses"] or 0) for r in rows.values()) == 2, "one vote: one win, one loss"
PY
then
  echo "REVIEW TEST FAILED: results.csv does not carry the ratings, the pick and the vote" >&2; failed=1
fi
[ -s "$work/out/review.csv" ] || { echo "REVIEW TEST FAILED: no review.csv" >&2; failed=1; }
for shot in review-grid review-compare; do
  [ -s "$work/$shot.png" ] || { echo "REVIEW TEST FAILED: no $shot.png" >&2; failed=1; }
done
echo "review: screenshots at $work/review-grid.png and review-compare.png"
echo "$((1 - failed)) passed, $failed failed"
exit "$failed"
