#!/usr/bin/env bash
# Installs whatever AkiDB needs that is missing, idempotently:
#   1. Node >= 22 (Node 24 from the npm registry package `node` into .tools/node when the
#      machine's Node is older),
#   2. the npm workspaces' dependencies (from package-lock.json), and the native addon
#      (control-plane/native: the vector index; built by scripts/build-native.sh, needs a C++ compiler),
#   3. the inference Python environment at inference/.venv (uv, from inference/uv.lock), with
#      MLX's CUDA build and onnxruntime-gpu (extra `cuda`) where nvidia-smi finds an NVIDIA GPU and
#      driver, else their CPU builds (extra `cpu`); on Apple Silicon MLX uses Metal either way.
# With --test it also installs the test-only reference stack (torch CPU + transformers, and
# sentence-transformers for bench/retrieval.py).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

NODE_MAJOR_MIN=22
NODE_VERSION=24
UV_VERSION=0.13.9
TORCH_VERSION=2.13.0
SENTENCE_TRANSFORMERS_VERSION=6.2.0

log() { printf '[setup] %s\n' "$*" >&2; }

want_test=false
[[ "${1:-}" == "--test" ]] && want_test=true

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

ensure_node() {
  local system_node
  system_node="$(command -v node || true)"
  if [[ -x .tools/node/node_modules/.bin/node ]]; then
    return
  fi
  if [[ -n "$system_node" && "$(node_major "$system_node")" -ge "$NODE_MAJOR_MIN" ]]; then
    return
  fi
  log "Node ${system_node:+$("$system_node" --version) }is older than ${NODE_MAJOR_MIN}; installing Node ${NODE_VERSION} from the npm registry into .tools/node"
  mkdir -p .tools/node
  npm install --no-save --no-package-lock --prefix .tools/node "node@${NODE_VERSION}" >&2
}

ensure_npm_deps() {
  local stamp=node_modules/.akidb-installed
  if [[ -f "$stamp" && "$stamp" -nt package-lock.json ]]; then
    return
  fi
  # npm ci rejects this lock (npm 11 leaves other platforms' optional packages out of it), so install.
  log "installing npm dependencies"
  PATH="$(scripts/node-path.sh):$PATH" npm install --no-audit --no-fund >&2
  touch "$stamp"
}

ensure_uv() {
  if [[ -x .tools/uv/bin/uv ]]; then
    return
  fi
  log "installing uv ${UV_VERSION} into .tools/uv"
  python3 -m venv .tools/uv
  .tools/uv/bin/pip install --quiet "uv==${UV_VERSION}" >&2
}

# `cuda` where an NVIDIA GPU and its driver answer (Linux only; MLX has no CUDA build elsewhere).
mlx_extra() {
  if [[ "$(uname -s)" == Linux ]] && nvidia-smi -L >/dev/null 2>&1; then
    echo cuda
  else
    echo cpu
  fi
}

ensure_python_env() {
  local stamp=inference/.venv/.akidb-installed extra
  extra="$(mlx_extra)"
  if [[ -f "$stamp" && "$stamp" -nt inference/uv.lock && "$(cat "$stamp")" == "$extra" ]]; then
    return
  fi
  log "syncing the inference environment (inference/.venv, MLX extra '${extra}') from inference/uv.lock"
  # --inexact keeps the test-only reference stack (torch) that is installed outside the lock; the
  # other extra's builds have to go explicitly, as both of each pair install the same files
  # (mlx/lib/libmlx.so; the onnxruntime module).
  local others=(mlx-cuda-13 onnxruntime-gpu) other
  [[ "$extra" == cuda ]] && others=(mlx-cpu onnxruntime)
  if [[ -x inference/.venv/bin/python ]]; then
    for other in "${others[@]}"; do
      (cd inference && ../.tools/uv/bin/uv pip uninstall --python .venv/bin/python "$other" >/dev/null 2>&1 || true)
    done
  fi
  (cd inference && UV_PYTHON_DOWNLOADS=never ../.tools/uv/bin/uv sync --frozen --inexact --extra "$extra" --python python3 >&2)
  echo "$extra" >"$stamp"
}

ensure_reference_stack() {
  if inference/.venv/bin/python -c 'import torch, transformers, sentence_transformers' 2>/dev/null; then
    return
  fi
  # torch stays out of uv.lock: the registry's Linux build pulls several GB of CUDA packages,
  # while `pip install torch==2.13.0` on these machines takes the local CPU wheel.
  log "installing the test-only reference stack (torch ${TORCH_VERSION} CPU, transformers, sentence-transformers ${SENTENCE_TRANSFORMERS_VERSION})"
  inference/.venv/bin/python -m pip --version >/dev/null 2>&1 || inference/.venv/bin/python -m ensurepip >/dev/null
  inference/.venv/bin/python -m pip install --quiet "torch==${TORCH_VERSION}" >&2
  inference/.venv/bin/python -m pip install --quiet "sentence-transformers==${SENTENCE_TRANSFORMERS_VERSION}" >&2
}

ensure_node
ensure_npm_deps
scripts/build-native.sh
ensure_uv
ensure_python_env
if $want_test; then
  ensure_reference_stack
fi
