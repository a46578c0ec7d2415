#!/usr/bin/env bash
# Dry run against the live /proc/sys: per proposed change the current value,
# the proposed value, the rationale and the guardrail verdict. Writes nothing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
exec "$bin" --applier sysctl "$@"
