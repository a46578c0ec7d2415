#!/usr/bin/env bash
# Restore every value recorded in experiments/backup/sysctl_backup.json and
# verify it. A second run says there is nothing to do.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
exec "$bin" --applier sysctl --rollback "$@"
