"""Writing an ONNX graph with `onnx.helper`: a small writer, and the layers the architectures share.

Graphs use standard ONNX opset 23 operators (RMSNormalization, RotaryEmbedding, Attention with
grouped key/value heads), which ONNX Runtime runs as single kernels, so no fusion pass has to
recognise a pattern (onnxruntime issue #29618: its Qwen3 rotary fusion broke batches > 1).
Inputs: `input_ids` and `attention_mask`, (batch, tokens) int32; output: `hidden` (batch, tokens,
hidden) float32, the final hidden states the engine pools.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import precision
from .precision import Precision

OPSET = 23
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "hidden"
EXTERNAL_BYTES = 1024
"""Constants this large or larger go to the weights file (graphs over 2 GB cannot be one protobuf)."""
ALIGNMENT = 4096
"""Offset alignment of a weight in the weights file (a page: ONNX Runtime can map it as it is)."""


class GraphWriter:
    """Nodes and initializers of one graph; every method returns the name of the value it adds.

    Weights are written to `data` (the file `location` names, beside the graph) the moment they are
    added, at `weights` precision; the graph keeps only their offsets. Writing a graph thus holds
    one weight at a time, not the model twice (as building the whole protobuf and then saving it
    with external data did: 7.4 GB for the Qwen3-0.6B shape)."""

    def __init__(self, data: BinaryIO, location: str, weights: Precision = "f32") -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.weights = weights
        self._data = data
        self._location = location
        self._domains: set[str] = set()
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, value: np.ndarray | np.generic | list[int] | float, name: str | None = None) -> str:
        array = np.asarray(value)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        name = name or self._name("const")
        if array.nbytes < EXTERNAL_BYTES:
            self.initializers.append(numpy_helper.from_array(array, name))
        else:
            self.initializers.append(self._external(array, name))
        return name

    def _external(self, array: np.ndarray, name: str) -> onnx.TensorProto:
        self._data.write(b"\0" * (-self._data.tell() % ALIGNMENT))
        offset = self._data.tell()
        self._data.write(np.ascontiguousarray(array).data.cast("B"))
        dtype = helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor = TensorProto(name=name, dims=array.shape, data_type=dtype)
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", self._location), ("offset", offset), ("length", array.nbytes)):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, str(value)
        return tensor

    def op(self, op_type: str, *inputs: str, domain: str = "", **attributes: Any) -> str:
        """One node with one output; returns the output's name. `""` is an omitted optional input."""
        name = self._name(op_type)
        if domain:
            self._domains.add(domain)
        self.nodes.append(
            helper.make_node(op_type, list(inputs), [name], name=name, domain=domain or None, **attributes)
        )
        return name

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray | None = None, name: str = "linear") -> str:
        """x @ weight.T (+ bias) at the writer's precision, `weight` stored (out, in) as in the checkpoint."""
        bias_name = None if bias is None else self.constant(bias, f"{name}.bias")
        if self.weights == "int8":
            q, scales = precision.int8_columns(weight)
            return self.op(
                "DynamicQuantizeMatMul",
                x,
                self.constant(q, f"{name}.q8"),
                self.constant(scales, f"{name}.scales"),
                *([] if bias_name is None else ["", bias_name]),  # no zero points: symmetric
                domain="com.microsoft",
            )
        if self.weights == "int4":
            packed, scales, zero_points = precision.int4_blocks(weight)
            y = self.op(
                "MatMulNBits",
                x,
                self.constant(packed, f"{name}.q4"),
                self.constant(scales, f"{name}.scales"),
                self.constant(zero_points, f"{name}.zero_points"),
                domain="com.microsoft",
                K=weight.shape[1],
                N=weight.shape[0],
                bits=4,
                block_size=precision.INT4_BLOCK_SIZE,
                accuracy_level=precision.INT4_ACCURACY_LEVEL,
            )
        else:
            y = self.op("MatMul", x, self.constant(np.ascontiguousarray(weight.T), f"{name}.weight"))
        return y if bias_name is None else self.op("Add", y, bias_name)

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
        opsets = [helper.make_opsetid("", OPSET), *(helper.make_opsetid(d, 1) for d in sorted(self._domains))]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="akidb")
        model.ir_version = 10
        return model


HEAD_INPUT = "pooled"


def head_model(head: list[np.ndarray]) -> onnx.ModelProto:
    """The Dense layers after pooling (sentence-transformers' modules, weights (out, in), no bias) as
    a graph of their own, `pooled` (batch, in) float32 to (batch, out): run by ONNX Runtime on the
    model's device instead of numpy, whose BLAS threads spin after each product and on a many-core
    host slowed the next request's tokenization several-fold (measured: 6-13 ms instead of 0.8 ms for
    32 passages on a 16-core H200 host)."""
    initializers, nodes, value = [], [], HEAD_INPUT
    for index, weight in enumerate(head):
        name = f"dense_{index}"
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(weight.T, dtype=np.float32), name))
        nodes.append(helper.make_node("MatMul", [value, name], [f"{name}_out"]))
        value = f"{name}_out"
    nodes.append(helper.make_node("Identity", [value], [OUTPUT]))
    model = helper.make_model(
        helper.make_graph(
            nodes,
            "akidb_head",
            [helper.make_tensor_value_info(HEAD_INPUT, TensorProto.FLOAT, ["batch", head[0].shape[1]])],
            [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", head[-1].shape[0]])],
            initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="akidb",
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
