"""Writing an ONNX graph with `onnx.helper`: a small writer, and the layers the architectures share.

Graphs use standard ONNX opset 23 operators (RMSNormalization, RotaryEmbedding, Attention with
grouped key/value heads), which ONNX Runtime runs as single kernels, so no fusion pass has to
recognise a pattern (onnxruntime issue #29618: its Qwen3 rotary fusion broke batches > 1).
Inputs: `input_ids` and `attention_mask`, (batch, tokens) int32; output: `hidden` (batch, tokens,
hidden) float32, the final hidden states the engine pools.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 23
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "hidden"


class GraphWriter:
    """Nodes and initializers of one graph; every method returns the name of the value it adds."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, value: np.ndarray | np.generic | list[int] | float, name: str | None = None) -> str:
        array = np.asarray(value)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        tensor = numpy_helper.from_array(array, name or self._name("const"))
        self.initializers.append(tensor)
        return tensor.name

    def op(self, op_type: str, *inputs: str, domain: str = "", **attributes: Any) -> str:
        """One node with one output; returns the output's name."""
        name = self._name(op_type)
        self.nodes.append(
            helper.make_node(op_type, list(inputs), [name], name=name, domain=domain or None, **attributes)
        )
        return name

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray | None = None, name: str = "linear") -> str:
        """x @ weight.T (+ bias), `weight` stored (out, in) as in the checkpoint."""
        y = self.op("MatMul", x, self.constant(np.ascontiguousarray(weight.T), f"{name}.weight"))
        return y if bias is None else self.op("Add", y, self.constant(bias, f"{name}.bias"))

    def model(self, output: str) -> onnx.ModelProto:
        self.nodes.append(helper.make_node("Identity", [output], [OUTPUT]))
        batch_tokens = ["batch", "tokens"]
        graph = helper.make_graph(
            self.nodes,
            "akidb_embedding",
            [helper.make_tensor_value_info(name, TensorProto.INT32, batch_tokens) for name in INPUTS],
            [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [*batch_tokens, "hidden_size"])],
            self.initializers,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="akidb"
        )
        model.ir_version = 10
        return model


def attention_mask(graph: GraphWriter, *, causal: bool, window: int | None = None) -> str:
    """(batch, 1, tokens, tokens) bool, True where query i may attend key j: real keys only, j <= i
    when `causal`, |i - j| < `window`. Every query sees itself, so a padding row never has every key
    masked (its softmax would be NaN)."""
    keys = graph.op("Cast", INPUTS[1], to=TensorProto.BOOL)
    allowed = graph.op("Unsqueeze", keys, graph.constant([1, 2]))
    length = graph.op("Shape", INPUTS[1], start=1, end=2)
    positions = graph.op(
        "Range", graph.constant(np.int64(0)), graph.op("Squeeze", length), graph.constant(np.int64(1))
    )
    query = graph.op("Unsqueeze", positions, graph.constant([1]))
    key = graph.op("Unsqueeze", positions, graph.constant([0]))
    if causal:
        allowed = graph.op("And", allowed, graph.op("LessOrEqual", key, query))
    if window is not None:
        distance = graph.op("Abs", graph.op("Sub", query, key))
        allowed = graph.op("And", allowed, graph.op("Less", distance, graph.constant(np.int64(window))))
    return graph.op("Or", allowed, graph.op("Equal", query, key))


def position_ids(graph: GraphWriter) -> str:
    """(batch, tokens) int64: 0, 1, ... on every row (RoPE only sees relative positions, so left
    padding does not change a real token's attention)."""
    shape = graph.op("Shape", INPUTS[0])
    length = graph.op("Shape", INPUTS[0], start=1, end=2)
    positions = graph.op(
        "Range", graph.constant(np.int64(0)), graph.op("Squeeze", length), graph.constant(np.int64(1))
    )
    return graph.op("Expand", graph.op("Unsqueeze", positions, graph.constant([0])), shape)


def rope_cache(
    graph: GraphWriter, head_dim: int, base: float, max_positions: int, name: str
) -> tuple[str, str]:
    """cos and sin caches (max_positions, head_dim / 2) for `RotaryEmbedding` (non-interleaved, as
    Hugging Face's rotate_half), computed in float32 as transformers computes them."""
    inv_freq = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim))
    angles = np.outer(np.arange(max_positions, dtype=np.float32), inv_freq.astype(np.float32))
    return (
        graph.constant(np.cos(angles).astype(np.float32), f"{name}.cos"),
        graph.constant(np.sin(angles).astype(np.float32), f"{name}.sin"),
    )


def rms_norm(graph: GraphWriter, x: str, weight: np.ndarray, eps: float, name: str) -> str:
    """Normalised over the last axis, scaled by `weight`."""
    return graph.op("RMSNormalization", x, graph.constant(weight, f"{name}.weight"), axis=-1, epsilon=eps)


def split_heads(graph: GraphWriter, x: str, head_dim: int) -> str:
    """(batch, tokens, heads * head_dim) -> (batch, tokens, heads, head_dim)."""
    return graph.op("Reshape", x, graph.constant([0, 0, -1, head_dim]))


def merge_heads(graph: GraphWriter, x: str) -> str:
    """(batch, tokens, heads, head_dim) -> (batch, tokens, heads * head_dim)."""
    return graph.op("Reshape", x, graph.constant([0, 0, -1]))
