#!/usr/bin/env bash
# Ansible for the fleet tests and the ssh-vs-ansible benchmark: ansible-core and
# the ansible.posix collection (ansible.posix.sysctl), installed from PyPI into
# a virtual environment cached at ${SEMANTOS_CACHE}/ansible-venv and reused when
# present. Ansible Galaxy is not reachable from CI and ansible.posix is not
# published on PyPI by itself, so we install the `ansible` package, which
# bundles ansible.posix with ansible-core (pip picks the newest release that
# supports this Python).
#
# The tests find ansible-playbook at $SEMANTOS_ANSIBLE_PLAYBOOK, else at
# ${SEMANTOS_CACHE}/ansible-venv/bin/ansible-playbook, else on PATH.
set -euo pipefail
cache="${SEMANTOS_CACHE:-/var/cache/semantos}"
venv="$cache/ansible-venv"
# The marker is written last: a killed install is redone, never taken as complete.
if [ -f "$venv/.semantos-complete" ] && [ -x "$venv/bin/ansible-playbook" ]; then
  exit 0
fi
py=""
# The system Python first: it is the same on every machine of this kind.
for c in /usr/bin/python3 python3; do
  if command -v "$c" >/dev/null && "$c" -c 'import venv, ensurepip' 2>/dev/null; then py="$c"; break; fi
done
if [ -z "$py" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv
    py=/usr/bin/python3
  else
    echo "no python3 with venv and not root: ansible tests will skip" >&2
    exit 0
  fi
fi
mkdir -p "$cache"
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check --no-cache-dir 'ansible>=9'
# Prove the module we generate playbooks for is there before declaring success.
"$venv/bin/ansible-doc" -t module ansible.posix.sysctl >/dev/null
touch "$venv/.semantos-complete"
version="$("$venv/bin/ansible-playbook" --version)"
echo "ansible installed in $venv: ${version%%$'\n'*}"
