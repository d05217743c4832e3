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
chromium "${flags[@]}" --dump-dom "$page#filter=enablesound:true" >"$work/dom-filtered.html" 2>>"$work/chromium.log"
# The screenshots stay in the test output: target/browser-test/report-1280.png and -1920.png.
chromium "${flags[@]}" --window-size=1280,900 --screenshot="$work/report-1280.png" "$page" >/dev/null 2>>"$work/chromium.log"
chromium "${flags[@]}" --window-size=1920,1080 --screenshot="$work/report-1920.png" "$page" >/dev/null 2>>"$work/chromium.log"
cp "$work/report-1280.png" "$work/report.png"

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
for width in 1280 1920; do
  [ -s "$work/report-$width.png" ] || { echo "BROWSER TEST FAILED: no screenshot at $width px" >&2; failed=1; }
done
# The prompt text is shown in its row, not only in a tooltip.
if ! grep -q '<span class="prompt">A drone shot pulling back from a mountain lake' "$work/dom.html"; then
  echo "BROWSER TEST FAILED: the prompt text is not shown in its row" >&2; failed=1
fi
# Clips made with sound are not muted; the others are.
sound=$(tail -n +2 "$work/out/results.csv" | grep ',completed,' | grep -c ',true,' || true)
unmuted=$(grep -o '<video [^>]*>' "$work/dom.html" | grep -vc ' muted' || true)
if [ "$unmuted" != "$sound" ] || [ "$sound" = 0 ]; then
  echo "BROWSER TEST FAILED: $unmuted unmuted videos; expected $sound (the clips made with sound)" >&2; failed=1
fi
# The filter: only the cells made with sound stay visible.
visible=$(grep -o '<figure class="cell [a-z]*"' "$work/dom-filtered.html" | wc -l)
hidden=$(grep -o '<figure class="cell [a-z]* hidden"' "$work/dom-filtered.html" | wc -l)
with_sound=$(tail -n +2 "$work/out/results.csv" | grep -c ',true,' || true)
if [ "$visible" != "$with_sound" ] || [ $((visible + hidden)) != 16 ]; then
  echo "BROWSER TEST FAILED: the sound filter left $visible cells visible ($hidden hidden); expected $with_sound" >&2; failed=1
fi
# Issue 26, item 9: a prompt without an id is shown once in its row (its full text, no cut copy).
first_row=$(grep -o '<tr><th class="row">[^¶]*</th><td>' "$work/dom.html" | grep 'A drone shot' | sed 's/<td>.*//' | head -1)
copies=$(printf '%s' "$first_row" | grep -o 'A drone shot pulling back' | wc -l)
if [ "$copies" != 1 ]; then
  echo "BROWSER TEST FAILED: the first prompt's row shows its text $copies times: $first_row" >&2; failed=1
fi
# Issue 26, item 6: other axes for rows and columns; every cell names its prompt, no row is
# headed by one prompt's text, no header is empty.
"$root/target/debug/kling-batch" report "$work/out" --rows aspect_ratio --columns style 2>>"$work/run.log" || {
  echo "BROWSER TEST FAILED: report --rows aspect_ratio --columns style failed" >&2; failed=1; }
chromium "${flags[@]}" --dump-dom "$page" >"$work/dom-axes.html" 2>>"$work/chromium.log"
named=$(grep -o '<figcaption>[^<]*<br><span class="cell-prompt">[^<]\+</span>' "$work/dom-axes.html" | wc -l)
axes_cells=$(grep -o 'data-cells="[0-9]*"' "$work/dom-axes.html" | grep -o '[0-9]*' || true)
if [ "$axes_cells" != 16 ] || [ "$named" != 16 ]; then
  echo "BROWSER TEST FAILED: with other axes, $named of $axes_cells cells name their prompt; expected 16 of 16" >&2; failed=1
fi
if grep -q '<th class="row">[^<]*<span class="prompt">' "$work/dom-axes.html" || grep -q '<th class="row">[^<]*<br><span class="prompt">' "$work/dom-axes.html"; then
  echo "BROWSER TEST FAILED: a row of aspect ratios is headed by a prompt's text" >&2; failed=1
fi
if grep -o '<thead>.*</thead>' "$work/dom-axes.html" | grep -q '<th></th>'; then
  echo "BROWSER TEST FAILED: a column header is empty" >&2; failed=1
fi
if ! grep -q '<th>style: not set</th>' "$work/dom-axes.html" || ! grep -q '<th>style=noir</th>' "$work/dom-axes.html"; then
  echo "BROWSER TEST FAILED: the style columns are not named" >&2; failed=1
fi
echo "browser: $cells cells, $videos videos ($unmuted with sound), filter kept $visible; screenshots at $work/report-1280.png and report-1920.png"
echo "$((1 - failed)) passed, $failed failed"
exit "$failed"
