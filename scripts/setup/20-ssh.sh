#!/usr/bin/env bash
# OpenSSH server and client for the fleet rollout tests (tests/integration/fleet.rs):
# each test network namespace runs its own `sshd` on an address the test makes.
# The packaged sshd service is not started or enabled: the tests run their own
# sshd processes with generated host keys and configs in temporary directories.
set -euo pipefail
need=()
command -v ssh >/dev/null || need+=(openssh-client)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    # policy-rc.d keeps the package's post-install from starting a system-wide sshd.
    prc=/usr/sbin/policy-rc.d
    made_prc=0
    if [ ! -e "$prc" ]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod 755 "$prc"; made_prc=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" || { [ $made_prc = 1 ] && rm -f "$prc"; exit 1; }
    [ $made_prc = 1 ] && rm -f "$prc"
  else
    echo "missing ${need[*]} and not root: fleet tests will skip" >&2
  fi
fi
# sshd refuses to start without its privilege-separation directory.
if [ "$(id -u)" = 0 ]; then mkdir -p /run/sshd && chmod 755 /run/sshd; fi
