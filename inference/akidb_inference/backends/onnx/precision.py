"""Weight precisions of a written graph: int8 (ONNX Runtime's dynamic quantization: int8 weights per
output channel, activations quantized per batch at run time) and int4 (`MatMulNBits`, 4-bit
weights in blocks with a scale and zero point each)."""

from __future__ import annotations

from typing import Literal

import numpy as np

Precision = Literal["f32", "int8", "int4"]
PRECISIONS: tuple[Precision, ...] = ("f32", "int8", "int4")

INT4_BLOCK_SIZE = 32
"""Inputs per 4-bit block: smaller blocks follow the weights more closely and cost more scales."""
INT4_ACCURACY_LEVEL = 4
"""MatMulNBits computes with int8 activations (level 4): the fast path of its CPU kernel."""


def int8_columns(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An (out, in) float weight as `DynamicQuantizeMatMul` takes it: (in, out) int8 values and one
    float scale per output column, symmetric (round(w / scale) in -127..127, zero point 0), as
    `onnxruntime.quantization.quantize_dynamic(per_channel=True, weight_type=QInt8)` rounds them.
    The activations are quantized per batch at run time (uint8, asymmetric)."""
    absmax = np.abs(weight).max(axis=1)
    scales = np.where(absmax > 0, absmax / 127, 1).astype(np.float32)
    q = np.clip(np.round(weight / scales[:, None]), -127, 127).astype(np.int8)
    return np.ascontiguousarray(q.T), scales


def int4_blocks(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An (out, in) float weight as `MatMulNBits` takes it: asymmetric 4-bit blocks of
    `INT4_BLOCK_SIZE` inputs, packed values, float scales and packed uint8 zero points. An MLX
    4-bit checkpoint's weights are rounded again from their dequantized values: its own groups
    would need float zero points (w = scale * q + bias), which the CPU kernel runs about 5x slower
    than uint8 ones."""
    packed, scales, zero_points, _ = _quantize(weight, INT4_BLOCK_SIZE)
    return packed, scales, zero_points


def _quantize(weight: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Asymmetric 4-bit blocks of an (out, in) float weight: uint8 zero points, float scales."""
    n, k = weight.shape
    padded = -k % block
    blocks = np.pad(weight, ((0, 0), (0, padded))).reshape(n, -1, block)
    low, high = np.minimum(blocks.min(axis=2), 0), np.maximum(blocks.max(axis=2), 0)
    scales = np.where(high > low, (high - low) / 15, 1).astype(np.float32)
    zero_points = np.clip(np.round(-low / scales), 0, 15).astype(np.uint8)
    q = np.clip(np.round(blocks / scales[..., None]) + zero_points[..., None], 0, 15).astype(np.uint8)
    return _pack(q.reshape(n, -1), block), scales.reshape(-1), _pack_zero_points(zero_points), block


def _pack(q: np.ndarray, block: int) -> np.ndarray:
    """(out, in) values 0..15 -> (out, blocks, block / 2) bytes, two values per byte, low nibble first."""
    n = q.shape[0]
    q = np.pad(q, ((0, 0), (0, -q.shape[1] % block)))
    pairs = q.reshape(n, -1, block // 2, 2)
    packed: np.ndarray = (pairs[..., 0] | (pairs[..., 1] << 4)).astype(np.uint8)
    return packed


def _pack_zero_points(zero_points: np.ndarray) -> np.ndarray:
    """(out, blocks) -> per output row, ceil(blocks / 2) bytes, low nibble first."""
    padded = np.pad(zero_points, ((0, 0), (0, zero_points.shape[1] % 2)))
    pairs = padded.reshape(padded.shape[0], -1, 2)
    packed: np.ndarray = (pairs[..., 0] | (pairs[..., 1] << 4)).astype(np.uint8)
    return packed.reshape(-1)
