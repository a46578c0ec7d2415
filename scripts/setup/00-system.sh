#!/usr/bin/env bash
# System tools the privileged tests use: ip (network namespaces), procps
# (sysctl, for comparisons), util-linux (setpriv, unshare), openssl (a
# throwaway CA for the LLM-over-https test), groff and man-db (the man pages
# are rendered with warnings on by the CLI tests).
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v sysctl >/dev/null || need+=(procps)
command -v setpriv >/dev/null || need+=(util-linux)
command -v openssl >/dev/null || need+=(openssl)
command -v groff >/dev/null || need+=(groff)
command -v man >/dev/null || need+=(man-db)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing ${need[*]} and not root: privileged tests will skip" >&2
  fi
fi
