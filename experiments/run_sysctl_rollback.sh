#!/usr/bin/env bash
# Restore every value recorded in experiments/backup/sysctl_backup.json and
# verify it. A second run says there is nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."
# SEMANTOS_BIN names an already built binary (the tests use it); otherwise build one.
bin="${SEMANTOS_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --locked --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/semantos"
fi
exec "$bin" --applier sysctl --rollback "$@"
