"""Minimal reproduction: `mx.quantized_matmul` on CUDA is wrong when K is a single quantization group.

    python bench/cuda_quantized_matmul.py          # on a machine with MLX's CUDA build

For each case (group size, bits, dtype, K of 1, 2 or 4 groups) it multiplies a random x (M, K) by
a random quantized w (N, K)^T on the GPU and compares with x @ dequantize(w)^T computed on the CPU
in float32, as an error relative to the largest expected value. Float32 inputs may run on the
matrix units' TF32 mode (relative error ~1e-3); a wrong kernel is off by far more. Results with
MLX 0.32.4 + mlx-cuda-13 on an H200 are in docs/inference.md ("Known upstream issues"). Exit
status 1 when any case is wrong, so the script also tells whether an MLX upgrade fixed it.
"""

from __future__ import annotations

import importlib.metadata
import sys

import mlx.core as mx
import numpy as np

M, N = 5, 96
TOLERANCE = {"float32": 5e-3, "bfloat16": 3e-2}
"""Largest relative error accepted (TF32 rounding for float32, bfloat16 rounding of inputs)."""
CASES = [
    (group_size, bits, dtype, groups)
    for group_size, bits in ((64, 4), (128, 4), (32, 8))
    for dtype in ("float32", "bfloat16")
    for groups in (1, 2, 4)
]


def relative_error(group_size: int, bits: int, dtype: str, k: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    x = mx.array(rng.standard_normal((M, k)).astype(np.float32))
    w = mx.array(rng.standard_normal((N, k)).astype(np.float32))
    w_q, scales, biases = mx.quantize(w, group_size=group_size, bits=bits, stream=mx.cpu)
    expected = x @ mx.dequantize(w_q, scales, biases, group_size=group_size, bits=bits, stream=mx.cpu).T
    cast = getattr(mx, dtype)
    got = mx.quantized_matmul(
        x.astype(cast),
        w_q,
        scales.astype(cast),
        biases.astype(cast),
        transpose=True,
        group_size=group_size,
        bits=bits,
        stream=mx.gpu,
    )
    error = mx.abs(got.astype(mx.float32) - expected).max(stream=mx.cpu)
    return float(error / mx.abs(expected).max(stream=mx.cpu))


def main() -> int:
    if not mx.cuda.is_available():
        print("MLX has no CUDA device here (install mlx[cuda13]); nothing to reproduce")
        return 0
    print(f"mlx {importlib.metadata.version('mlx')} on {mx.device_info(mx.gpu).get('device_name')}")
    print(f"{'group':>5} {'bits':>4} {'dtype':>8} {'K':>5} {'groups':>6} {'rel. error':>11}  result")
    wrong = 0
    for group_size, bits, dtype, groups in CASES:
        k = group_size * groups
        try:
            error = relative_error(group_size, bits, dtype, k, seed=k + bits)
        except RuntimeError as failure:  # the JIT compile of a kernel can fail (see the docs)
            print(f"{group_size:>5} {bits:>4} {dtype:>8} {k:>5} {groups:>6} {'-':>11}  ERROR {failure}"[:300])
            wrong += 1
            continue
        ok = error <= TOLERANCE[dtype]
        wrong += not ok
        verdict = "ok" if ok else "WRONG"
        print(f"{group_size:>5} {bits:>4} {dtype:>8} {k:>5} {groups:>6} {error:>11.2g}  {verdict}")
    print(f"{wrong} wrong case(s) of {len(CASES)}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
