#!/usr/bin/env bash
# Apply to the live /proc/sys (root): backup to experiments/backup/sysctl_backup.json
# before the first write, journal, batches with read-back, monitor window,
# automatic rollback on failure or regression, audit log in logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
exec "${CARGO_TARGET_DIR:-target}/release/semantos" --applier sysctl --apply "$@"
