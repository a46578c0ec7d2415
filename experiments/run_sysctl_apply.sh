#!/usr/bin/env bash
# Apply to the live /proc/sys (root): backup to experiments/backup/sysctl_backup.json
# before the first write, journal, batches with read-back, monitor window,
# automatic rollback on failure or regression, audit log in logs/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
exec "$bin" --applier sysctl --apply "$@"
