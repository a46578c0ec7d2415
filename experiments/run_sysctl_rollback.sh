#!/usr/bin/env bash
# Restore every value recorded in experiments/backup/sysctl_backup.json and
# verify it. A second run says there is nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
exec "${CARGO_TARGET_DIR:-target}/release/semantos" --applier sysctl --rollback "$@"
