#!/usr/bin/env bash
# The GPU run through the device tool (an NVIDIA machine with Python 3.12, torch and transformers,
# no network). docs/inference.md ("GPU tests") and docs/benchmarks.md ("GPU") say how to call it.
#   stash : keep the first half of the mlx-cuda-13 wheel (.whl/) in /tmp (the wheel is larger
#           than one call may carry)
#   test  : assemble and install the wheels (.whl2/), unpack the tokenizers, build the four test
#           fixtures, run the quantized_matmul reproduction, the workaround before/after and the
#           GPU tests
#   serve MODEL [ARGS] : (after test) the spec's serving table through the control plane, on the
#           backend AKIDB_BENCH_BACKEND names (default mlx; onnx needs onnxruntime-gpu, see below)
#           (bench/serving.ts) for one real-size fixture (built first); carries .gpucp/ (Node 24 as node.xz, the
#           control plane's runtime node_modules as node_modules.tar.xz and its native addon, made here by
#           the `bundle` stage)
#   bundle : (here, not on the GPU machine) writes .gpucp/ for `serve`
#   bench : (after test, machine still warm) the engine at the real shapes: dequantized (the
#           default on CUDA) and 4-bit Linear layers, and mx.compile of the layers
#   onnx [torch] : (instead of stash/test, for ONNX Runtime runs) install .whl3/ (the inference
#           process's wheels, and mlx with its CPU build: the fixture writer quantizes with MLX),
#           unpack the tokenizers, run the ONNX Runtime CUDA tests (tests/test_gpu.py -k onnx, on the
#           f32 fixtures) and, with `torch`, build the two real-size fixtures and time
#           sentence-transformers' torch peer on them (bench/gpu.py --only torch); then `serve` with
#           AKIDB_BENCH_BACKEND=onnx
#   profile MODEL... : (after test) where a single query's time goes (bench/gpu.py --profile: the
#           engine's steps, cProfile, mx.compile, the model thread, ONNX Runtime CUDA f32/int4) and
#           the bare inference process over HTTP (bench/gpu.py --server), per real-size fixture
# Any stage also keeps the onnxruntime-gpu pieces it carries (.ortA ... .ortE: parts of one tar.xz
# made by `ort-parts`, over 64 MiB in all) in /tmp; once all are there it installs onnxruntime-gpu in
# /tmp/ort-site, which `profile` and `serve` put first on PYTHONPATH.
# Each stage fits one 10-minute call; a call must follow the previous one within the machine's
# 30 s warm window, or the installed wheels are gone.
# Everything it reports lands under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 AKIDB_FIXTURES_DIR=/tmp/akidb-fixtures
stage="$1"
# Builds one test fixture (tests/fixtures/build.py) unless it is already there.
ensure_fixture() {
  (cd inference && python3 -c "from tests.fixtures import build; build.ensure('$1', build.default_root())")
}
mkdir -p /tmp/akidb-ort
for part in .ort?/*; do [[ -e "$part" ]] && cp "$part" /tmp/akidb-ort/; done
if [[ ! -d /tmp/ort-site/onnxruntime && -f /tmp/akidb-ort/ort.sha256 ]] &&
  cat /tmp/akidb-ort/ort.part-* | sha256sum | grep -q "$(cat /tmp/akidb-ort/ort.sha256)"; then
  mkdir -p /tmp/ort-site && cat /tmp/akidb-ort/ort.part-* | xz -dc | tar -x -C /tmp/ort-site
fi
[[ -d /tmp/ort-site/onnxruntime ]] && export PYTHONPATH="/tmp/ort-site${PYTHONPATH:+:$PYTHONPATH}"
echo "onnxruntime-gpu pieces here: $(ls /tmp/akidb-ort | tr '\n' ' ') installed: $([[ -d /tmp/ort-site/onnxruntime ]] && echo yes || echo no)"
case "$stage" in
bundle)
  mkdir -p .gpucp
  xz -T0 -c "$(scripts/node-path.sh)/node" >.gpucp/node.xz
  PATH="$(scripts/node-path.sh):$PATH" npm ls --omit=dev --workspace control-plane --all --parseable |
    grep /node_modules/ | grep -v /node_modules/@akidb/ | sed "s|^$PWD/||" | sort -u >.gpucp/files
  tar -cJf .gpucp/node_modules.tar.xz -T .gpucp/files
  scripts/build-native.sh && cp control-plane/native/build/akidb_native.node .gpucp/
  ;;
stash)
  mkdir -p /tmp/akidb-wheel && cp .whl/mlx_cuda_13.part-* /tmp/akidb-wheel/
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/device.txt"
  { python3 -V; ls /usr/local/cuda/include | head -3; python3 -m pip list 2>/dev/null |
    grep -i -E "^(torch|transformers|tokenizers|typing.extensions|hf-xet|nvidia-cu|nvidia-cudnn|numpy|sentence)"; } |
    tee -a "$OUT/device.txt"
  ;;
test)
  # One kernel cache for the whole stage (docs/benchmarks.md gives cold-cache numbers separately).
  export MLX_PTX_CACHE_DIR=/tmp/ptx-shared AKIDB_BENCH_PTX_DIR=/tmp/ptx-shared
  cat /tmp/akidb-wheel/mlx_cuda_13.part-* .whl2/mlx_cuda_13.part-* >/tmp/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl2/*.whl \
    /tmp/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl || exit 1
  tar -xJf .whl2/tokenizers.tar.xz
  python3 -c 'import mlx.core as mx; print(mx.__version__, mx.cuda.is_available(), mx.device_info(mx.gpu))' | tee "$OUT/test.txt"
  (cd inference && python3 -c 'from tests.fixtures import build
for name in ["qwen3-f32", "qwen3-4bit", "gemma3-f32", "gemma3-4bit"]:
    build.ensure(name, build.default_root())') 2>&1 | tail -5
  python3 bench/cuda_quantized_matmul.py 2>&1 | tee -a "$OUT/test.txt"
  (cd inference && python3 ../bench/gpu.py --workaround) 2>&1 | tee -a "$OUT/test.txt"
  (cd inference && timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_models.py -k "not bert" -rs) 2>&1 |
    tail -30 | tee -a "$OUT/test.txt"
  ;;
onnx)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl3/*.whl || exit 1
  tar -xJf .whl3/tokenizers.tar.xz
  # The ONNX Runtime CUDA tests (CUDA graphs against transformers and against plain runs).
  for model in qwen3-f32 gemma3-f32; do
    ensure_fixture "$model" || exit 1
  done
  (cd inference && timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -k onnx -rs) 2>&1 |
    tail -15 | tee "$OUT/onnx-tests.txt"
  if [[ "${2:-}" == torch ]]; then
    for model in qwen3-0.6b-shape-4bit gemma-300m-shape-4bit; do
      ensure_fixture "$model" || exit 1
    done
    (cd inference && timeout 300 python3 ../bench/gpu.py --only torch --out "$OUT") 2>&1 | tee "$OUT/torch.txt"
  fi
  ;;
serve)
  mkdir -p /tmp/node/bin inference/.venv/bin
  [[ -x /tmp/node/bin/node ]] || xz -dc .gpucp/node.xz >/tmp/node/bin/node && chmod +x /tmp/node/bin/node
  tar -xJf .gpucp/node_modules.tar.xz
  mkdir -p control-plane/native/build && cp .gpucp/akidb_native.node control-plane/native/build/
  # The control plane starts inference/.venv/bin/python; here the machine's Python is that environment.
  # bench/servers.ts passes the control plane PATH and HOME only, so this stage's PYTHONPATH (the
  # onnxruntime-gpu in /tmp/ort-site) is written into the wrapper.
  printf '#!/bin/sh\nPYTHONPATH=%s/inference%s exec %s "$@"\n' "$PWD" "${PYTHONPATH:+:$PYTHONPATH}" "$(command -v python3)" >inference/.venv/bin/python
  chmod +x inference/.venv/bin/python
  export PATH="/tmp/node/bin:$PATH"
  model="$2"
  shift 2  # the rest goes to bench/serving.ts (e.g. --batch-timeout-ms 0)
  ensure_fixture "$model" || exit 1
  backend="${AKIDB_BENCH_BACKEND:-mlx}"
  node bench/serving.ts --model "$AKIDB_FIXTURES_DIR/$model" --device gpu --backend "$backend" "$@" \
    --out "$OUT/serving-$model-$backend.json" 2>&1 | tee "$OUT/serving-$model-$backend.txt"
  ;;
profile)
  export MLX_PTX_CACHE_DIR=/tmp/ptx-shared AKIDB_BENCH_PTX_DIR=/tmp/ptx-shared
  shift
  for model in "$@"; do
    ensure_fixture "$model" || exit 1
    (cd inference && timeout 240 python3 ../bench/gpu.py --profile "$model") 2>&1 | tee "$OUT/profile-$model.txt"
    (cd inference && timeout 150 python3 ../bench/gpu.py --server "$model") 2>&1 | tee -a "$OUT/profile-$model.txt"
  done
  ;;
ort-parts)
  # (here, not on the GPU machine) ort-parts WHEEL: the onnxruntime-gpu wheel unpacked and xz'd (its
  # CUDA kernels shrink about 20%), cut into parts sized to ride along with the other stages'
  # carries: .ortA with `stash`, .ortB and .ortC alone, .ortD with `test`, .ortE with `profile`.
  unpacked=$(mktemp -d)
  unzip -q "$2" -d "$unpacked" && tar -C "$unpacked" -c . | xz -T0 -6 >"$unpacked.tar.xz" || exit 1
  offset=0 index=0
  for part in A:15000000 B:61000000 C:61000000 D:9000000 E:0; do
    dir=".ort${part%%:*}" size="${part#*:}"
    rm -rf "$dir" && mkdir -p "$dir"
    if ((size > 0)); then
      tail -c "+$((offset + 1))" "$unpacked.tar.xz" | head -c "$size" >"$dir/ort.part-$index"
    else
      tail -c "+$((offset + 1))" "$unpacked.tar.xz" >"$dir/ort.part-$index"
    fi
    offset=$((offset + size)) index=$((index + 1))
  done
  sha256sum <"$unpacked.tar.xz" | cut -d' ' -f1 >.ortA/ort.sha256
  rm -rf "$unpacked" "$unpacked.tar.xz"
  ;;
bench)
  # The engine on the real shapes (built by `serve`), with shape buckets and with mx.compile of the
  # layers; one kernel cache for both (bench/serving.ts measures the cold start).
  AKIDB_BENCH_PTX_DIR=/tmp/ptx-bench python3 bench/gpu.py --out "$OUT" --only engine \
    --modes buckets buckets+compile 2>&1 | tee "$OUT/engine.txt"
  ;;
esac
