#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with Rust: installs what the
# tests need (as root, with apt-get), then runs every test. `.ci/run` calls it.
#
#   bash scripts/test.sh            # everything
#   SEMANTOS_REQUIRE_PRIVILEGED=1   # privileged tests fail instead of skipping
#
# Each scripts/setup/*.sh installs one group of dependencies and caches heavy
# set-up (virtual environments, built servers) outside the repository, under
# ${SEMANTOS_CACHE:-/var/cache/semantos}.
set -euo pipefail
cd "$(dirname "$0")/.."
export SEMANTOS_CACHE="${SEMANTOS_CACHE:-/var/cache/semantos}"
mkdir -p "$SEMANTOS_CACHE"
for s in scripts/setup/*.sh; do
  [ -e "$s" ] || continue
  echo "== setup: $s"
  bash "$s"
done
# Two cores: one test binary per area keeps linking cheap; tests inside run in parallel.
# fault-injection: the crash-safety tests drive the binary through SEMANTOS_FAULT, which only
# this feature compiles in. Build and test with the same features, so the test run uses (and
# does not rebuild over) the binary it checks.
cargo build --release --locked --all-targets --features fault-injection
# --no-fail-fast: one failing test binary (a unit test that meets an unusual
# kernel) must not hide every integration test behind it. cargo still exits
# non-zero when any test failed, and so does this script (set -e).
cargo test --release --locked --no-fail-fast --features fault-injection
