#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints (warnings are errors), every Rust test,
# then the official Python SDK against the simulator (it sets up its own venv), then the HTML
# gallery in headless Chromium (installed from Debian's packages if missing), the review app driven
# by Playwright (from npm, into ~/.cache/kling-batch), the MCP server through the official MCP
# Python SDK (its own venv), and in Hermes Agent and OpenClaw through their own MCP client code
# (a venv under target/; npm into ~/.cache/kling-batch, with Node 24 where the system's is older).
# Every stage runs and is
# reported; the script fails at the end if any failed.
set -euo pipefail
cd "$(dirname "$0")"
# The SIGKILL/resume suite's cycle count (see RELIABILITY.md).
export KLING_BATCH_KILL_CYCLES="${KLING_BATCH_KILL_CYCLES:-200}"
# PostgreSQL's server for the shared-state tests (issue 18): Debian's package, installed if missing.
# The tests make their own throwaway clusters with initdb; nothing is started here.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing Debian's postgresql for the shared-state tests"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
fi
# s3s-fs, the S3-compatible server of the object-storage tests (issue 19): built once into a cache
# folder outside the repository and reused by later runs on the same machine.
s3s="${KLING_BATCH_S3S_FS:-$HOME/.cache/kling-batch/s3s-fs/bin/s3s-fs}"
if [ ! -x "$s3s" ]; then
  echo "building s3s-fs 0.14.1 for the object-storage tests (once, into ~/.cache/kling-batch)"
  cargo install --locked --quiet s3s-fs@0.14.1 --features binary --root "$HOME/.cache/kling-batch/s3s-fs"
fi
export KLING_BATCH_S3S_FS="$s3s"
# Every stage runs, whatever an earlier one did; each is reported, and the script fails at the end
# if any failed (a failing Rust test must not hide the SDK and browser checks).
failed=()
stage() {
  local name="$1"; shift
  echo "=== $name"
  if "$@"; then
    echo "=== $name: passed"
  else
    echo "=== $name: FAILED"
    failed+=("$name")
  fi
}
stage "cargo fmt --check" cargo fmt --check
stage "cargo clippy (warnings are errors)" cargo clippy --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  stage "Rust tests (nextest)" cargo nextest run --locked --no-fail-fast
else
  stage "Rust tests" cargo test --locked --no-fail-fast
fi
stage "the official Python SDK against the simulator" ./tests/conformance/run.sh
stage "the gallery in headless Chromium" ./tests/browser/run.sh
stage "the review app in Chromium, driven by Playwright" ./tests/review/run.sh
stage "the MCP server through the official Python SDK" ./tests/mcp/run.sh
stage "the MCP server in Hermes Agent and OpenClaw, through their own MCP clients" ./tests/agents/run.sh
if [ "${#failed[@]}" -gt 0 ]; then
  echo "test.sh: ${#failed[@]} stage(s) failed: ${failed[*]}"
  exit 1
fi
echo "test.sh: every stage passed"
