"""Weight precisions of a written graph: int8 (ONNX Runtime's dynamic quantization: int8 weights per
output channel, activations quantized per batch at run time) and int4 (`MatMulNBits`, 4-bit
weights in blocks with a scale and zero point each)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

INT4_BLOCK_SIZE = 32
"""Inputs per 4-bit block: smaller blocks follow the weights more closely and cost more scales."""
INT4_ACCURACY_LEVEL = 4
"""MatMulNBits computes with int8 activations (level 4): the fast path of its CPU kernel."""


def to_int8(source: Path, target: Path) -> None:
    """Every MatMul with a constant weight becomes a dynamically quantized one (the embedding table,
    norms and attention stay float32)."""
    quantize_dynamic(
        source,
        target,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        weight_type=QuantType.QInt8,
        use_external_data_format=True,
        extra_options={"MatMulConstBOnly": True},
    )


def to_int4(graph: onnx.ModelProto) -> onnx.ModelProto:
    """Every MatMul with a constant (in, out) weight becomes a `MatMulNBits`, its weight rounded to
    asymmetric 4-bit blocks of `INT4_BLOCK_SIZE` inputs. An MLX 4-bit checkpoint's weights are
    rounded again from their dequantized values: its own groups would need float zero points
    (w = scale * q + bias), which the CPU kernel runs about 5x slower than uint8 ones."""
    initializers = {tensor.name: tensor for tensor in graph.graph.initializer}
    nodes = []
    for node in graph.graph.node:
        weight = initializers.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or len(weight.dims) != 2:
            nodes.append(node)
            continue
        layer = weight.name.removesuffix(".weight")
        k, n = weight.dims
        packed, scales, zero_points, block = _quantize(numpy_helper.to_array(weight).T, INT4_BLOCK_SIZE)
        graph.graph.initializer.remove(weight)
        names = [f"{layer}.q4", f"{layer}.scales", f"{layer}.zero_points"]
        for name, value in zip(names, (packed, scales, zero_points), strict=True):
            graph.graph.initializer.append(numpy_helper.from_array(value, name))
        nodes.append(
            helper.make_node(
                "MatMulNBits",
                [node.input[0], *names],
                list(node.output),
                name=node.name,
                domain="com.microsoft",
                K=k,
                N=n,
                bits=4,
                block_size=block,
                accuracy_level=INT4_ACCURACY_LEVEL,
            )
        )
    del graph.graph.node[:]
    graph.graph.node.extend(nodes)
    graph.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return graph


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
