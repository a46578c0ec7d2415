#!/usr/bin/env bash
# The sandbox reproduction: the whole pipeline on a simulated host.
# Writes experiments/sandbox/sysctl.conf and experiments/results/summary.csv
# (plus summary.svg, trials.csv, trace.json). Extra arguments are passed on,
# e.g. `bash experiments/run_reproduction.sh --seed 8 --trials 50`.
set -euo pipefail
cd "$(dirname "$0")/.."
# SEMANTOS_BIN names an already built binary (the tests use it); otherwise build one.
bin="${SEMANTOS_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --locked --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/semantos"
fi
exec "$bin" --seed "${SEED:-7}" --trials "${TRIALS:-20}" "$@"
