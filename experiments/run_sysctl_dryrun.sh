#!/usr/bin/env bash
# Dry run against the live /proc/sys: per proposed change the current value,
# the proposed value, the rationale and the guardrail verdict. Writes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
exec "${CARGO_TARGET_DIR:-target}/release/semantos" --applier sysctl "$@"
