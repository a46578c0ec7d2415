# Sourced by the run_*.sh scripts: sets $bin to the semantos binary.
# SEMANTOS_BIN names an already built binary (the tests use it); otherwise build one.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin="${SEMANTOS_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --locked --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/semantos"
fi
