#!/usr/bin/env bash
# The project's test command: build everything, run every Rust test (unit,
# codec, core and the lapin integration tests), then the pika suite against
# the freshly built `warren` binary.
#
#   scripts/test.sh
#
# Exits non-zero if any stage fails. A failing `cargo test` does not stop the
# pika stage (both results are reported); a failing build does.
# Stage time limits (seconds) can be raised with WARREN_CARGO_TEST_TIMEOUT and
# WARREN_PIKA_TIMEOUT.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
target_dir=${CARGO_TARGET_DIR:-$root/target}
[[ $target_dir = /* ]] || target_dir=$root/$target_dir
cargo_test_timeout=${WARREN_CARGO_TEST_TIMEOUT:-900}
pika_timeout=${WARREN_PIKA_TIMEOUT:-900}

failed=()
started=$SECONDS

stage() {
  printf '\n==================== %s ====================\n' "$*"
}

# Run a stage command under a time limit; record it as failed on non-zero exit.
run_stage() {
  local name=$1 limit=$2
  shift 2
  local rc=0
  timeout --kill-after=30 "$limit" "$@" || rc=$?
  case $rc in
    0) ;;
    124 | 137) echo "test.sh: $name exceeded its ${limit}s limit" >&2 ;;
    5) echo "test.sh: $name collected no tests (pytest exit 5)" >&2 ;;
    *) echo "test.sh: $name failed (exit $rc)" >&2 ;;
  esac
  if ((rc != 0)); then failed+=("$name"); fi
}

stage "1/3 build: cargo build --workspace --all-targets"
if ! cargo build --workspace --all-targets; then
  echo "test.sh: build failed; nothing else can run" >&2
  exit 1
fi

stage "2/3 Rust tests: cargo test --workspace --no-fail-fast"
run_stage "cargo test" "$cargo_test_timeout" cargo test --workspace --no-fail-fast

stage "3/3 pika suite against $target_dir/debug/warren"
if [[ ! -x $target_dir/debug/warren ]]; then
  echo "test.sh: $target_dir/debug/warren was not built" >&2
  failed+=("pika suite")
else
  run_stage "pika suite" "$pika_timeout" \
    env -u WARREN_AMQP_URL WARREN_BIN="$target_dir/debug/warren" tests/pika/run.sh
fi

stage "summary ($((SECONDS - started))s)"
if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all stages passed"
