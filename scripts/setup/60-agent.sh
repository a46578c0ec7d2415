#!/usr/bin/env bash
# systemd-analyze for the agent's unit check (tests/integration/agent.rs verifies
# packaging/semantos-agent.service with it). Only the tool is needed: the tests never start
# the unit, and this machine's PID 1 need not be systemd.
set -euo pipefail
if ! command -v systemd-analyze >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd
  else
    echo "missing systemd-analyze and not root: the unit file check will skip" >&2
  fi
fi
