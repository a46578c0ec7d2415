#!/usr/bin/env bash
# The sandbox reproduction: the whole pipeline on a simulated host.
# Writes experiments/sandbox/sysctl.conf and experiments/results/summary.csv
# (plus summary.svg, trials.csv, trace.json). Extra arguments are passed on,
# e.g. `bash experiments/run_reproduction.sh --seed 8 --trials 50`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
exec "$bin" --seed "${SEED:-7}" --trials "${TRIALS:-20}" "$@"
