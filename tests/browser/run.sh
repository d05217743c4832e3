#!/usr/bin/env bash
# The gallery in a real browser: runs the example sweep on the built-in simulator, loads the
# report.html it writes in headless Chromium (Debian's package, installed here if missing), and
# checks that every job's video cell rendered and the page logged no console errors. A screenshot
# is left at target/browser-test/report.png to look at.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$root/target/browser-test"

if ! command -v chromium >/dev/null 2>&1; then
  echo "browser test: installing Debian's chromium"
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >/dev/null
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null; then
    echo "BROWSER TEST FAILED: could not install chromium from Debian's packages" >&2
    exit 1
  fi
fi

cargo build --quiet --manifest-path "$root/Cargo.toml"
rm -rf "$work" && mkdir -p "$work"
"$root/target/debug/kling-batch" run "$root/manifests/example.yaml" --out "$work/out" --simulate -q 2>"$work/run.log" || {
  echo "BROWSER TEST FAILED: the run did not finish" >&2; cat "$work/run.log" >&2; exit 1; }
expected=$(tail -n +2 "$work/out/results.csv" | grep -c ',completed,' || true)

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --user-data-dir="$work/profile" --enable-logging=stderr --v=0
       --allow-file-access-from-files --virtual-time-budget=3000)
page="file://$work/out/report.html"
chromium "${flags[@]}" --dump-dom "$page" >"$work/dom.html" 2>"$work/chromium.log"
chromium "${flags[@]}" --window-size=1400,1000 --screenshot="$work/report.png" "$page" >/dev/null 2>>"$work/chromium.log"

cells=$(grep -o 'data-cells="[0-9]*"' "$work/dom.html" | grep -o '[0-9]*' || true)
videos=$(grep -o 'data-videos="[0-9]*"' "$work/dom.html" | grep -o '[0-9]*' || true)
console=$(grep -E 'CONSOLE|Uncaught' "$work/chromium.log" | grep -v 'favicon' || true)
failed=0
if [ "$cells" != "16" ] || [ "$videos" != "$expected" ]; then
  echo "BROWSER TEST FAILED: rendered $cells cells and $videos videos; expected 16 cells and $expected videos" >&2
  failed=1
fi
if [ -n "$console" ]; then
  echo "BROWSER TEST FAILED: console errors:" >&2; echo "$console" >&2
  failed=1
fi
[ -s "$work/report.png" ] || { echo "BROWSER TEST FAILED: no screenshot" >&2; failed=1; }
echo "browser: $cells cells, $videos videos, screenshot at $work/report.png"
echo "$((1 - failed)) passed, $failed failed"
exit "$failed"
