#!/usr/bin/env bash
# Apply to the live /proc/sys (root): backup to experiments/backup/sysctl_backup.json
# before the first write, journal, batches with read-back, monitor window,
# automatic rollback on failure or regression, audit log in logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
# SEMANTOS_BIN names an already built binary (the tests use it); otherwise build one.
bin="${SEMANTOS_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --locked --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/semantos"
fi
exec "$bin" --applier sysctl --apply "$@"
