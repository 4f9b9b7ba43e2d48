#!/usr/bin/env bash
# The README's test command: everything CI checks, in the order that fails fastest.
#   scripts/test.sh            setup (idempotent), fmt, clippy, tests, compose validation
# Exits non-zero on the first failing step.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck disable=SC1091
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

step() { printf '\n==> %s\n' "$*" >&2; }

# A cold build of the workspace's tests takes ~2 GB of target/ (rdkafka and librdkafka,
# tonic, one test binary per crate). Say so up front rather than as a linker's Bus error.
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir"
free_kib=$(df -Pk "$target_dir" | awk 'NR == 2 { print $4 }')
if [ "${free_kib:-0}" -lt $((3 * 1024 * 1024)) ]; then
  printf 'warning: only %s MiB free under %s; a cold build needs about 2.5 GiB.\n' \
    "$((free_kib / 1024))" "$target_dir" >&2
  printf '         Free some space (or point CARGO_TARGET_DIR elsewhere) if the build fails.\n' >&2
fi
# Incremental caches only pay off on the next edit; a CI clone never makes one.
if [ -n "${CI:-}" ]; then
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi

step "setup (installs what is missing)"
scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, warnings are errors)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "doc tests (before nextest, whose summary closes the run)"
cargo test --workspace --all-features --locked --doc

step "tests (nextest: one process per test, real servers on free loopback ports)"
# Tests wait on servers more than on CPU, so a few more threads than cores pays off.
cargo nextest run --workspace --all-features --locked --no-fail-fast \
  --test-threads "${TEST_THREADS:-3}" --retries 0

step "compose file"
docker-compose -f compose/docker-compose.yml config -q

step "all checks passed"
