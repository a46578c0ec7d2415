#!/usr/bin/env bash
# What build.rs needs to compile the eBPF programs (bpf/*.bpf.c): clang (it
# targets BPF itself; no bpf-linker, no nightly) and libbpf-dev for
# bpf/bpf_helpers.h. linux-libc-dev (linux/bpf.h) comes with the C toolchain.
# Without them the crate still builds and `collect --ebpf` says the probes
# were not built; the eBPF tests then skip, or fail under
# SEMANTOS_REQUIRE_PRIVILEGED=1.
set -euo pipefail
need=()
command -v clang >/dev/null || need+=(clang)
[ -e /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
[ -e /usr/include/linux/bpf.h ] || need+=(linux-libc-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing ${need[*]} and not root: eBPF probes will not be built" >&2
  fi
fi
