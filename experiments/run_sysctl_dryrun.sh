#!/usr/bin/env bash
# Dry run against the live /proc/sys: per proposed change the current value,
# the proposed value, the rationale and the guardrail verdict. Writes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
# SEMANTOS_BIN names an already built binary (the tests use it); otherwise build one.
bin="${SEMANTOS_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --locked --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/semantos"
fi
exec "$bin" --applier sysctl "$@"
