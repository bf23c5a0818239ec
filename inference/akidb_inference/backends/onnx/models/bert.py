"""BERT encoder (sentence-transformers models such as all-MiniLM-L6-v2) as an ONNX graph: absolute
position and token type embeddings, post-LayerNorm blocks, bidirectional attention."""

from __future__ import annotations

import numpy as np

from ....model_args.bert import ModelArgs
from ....model_args.bert import sanitize as sanitize
from ..graph import INPUTS, GraphWriter, attention_mask
from .base import Built

_ACTIVATIONS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "relu": None}
"""hidden_act -> the ONNX Gelu's `approximate` (None: Relu)."""


def layer_norm(graph: GraphWriter, x: str, args: ModelArgs, w: dict[str, np.ndarray], p: str) -> str:
    weight, bias = (graph.constant(w[f"{p}.{part}"], f"{p}.{part}") for part in ("weight", "bias"))
    return graph.op("LayerNormalization", x, weight, bias, axis=-1, epsilon=args.layer_norm_eps)


def attention(
    graph: GraphWriter, x: str, args: ModelArgs, w: dict[str, np.ndarray], p: str, mask: str
) -> str:
    q, k, v = (
        graph.linear(x, w[f"{p}.self.{name}.weight"], w[f"{p}.self.{name}.bias"], f"{p}.self.{name}")
        for name in ("query", "key", "value")
    )
    heads = args.num_attention_heads
    output = graph.op(
        "Attention",
        q,
        k,
        v,
        mask,
        q_num_heads=heads,
        kv_num_heads=heads,
        scale=(args.hidden_size // heads) ** -0.5,
    )
    return residual_output(graph, output, x, args, w, f"{p}.output")


def residual_output(
    graph: GraphWriter, h: str, residual: str, args: ModelArgs, w: dict[str, np.ndarray], p: str
) -> str:
    """BERT's post-norm step after attention and after the MLP: LayerNorm(residual + dense(h))."""
    dense = graph.linear(h, w[f"{p}.dense.weight"], w[f"{p}.dense.bias"], f"{p}.dense")
    return layer_norm(graph, graph.op("Add", residual, dense), args, w, f"{p}.LayerNorm")


def mlp(graph: GraphWriter, x: str, args: ModelArgs, w: dict[str, np.ndarray], p: str) -> str:
    h = graph.linear(
        x, w[f"{p}.intermediate.dense.weight"], w[f"{p}.intermediate.dense.bias"], f"{p}.intermediate.dense"
    )
    approximate = _ACTIVATIONS[args.hidden_act]
    h = graph.op("Relu", h) if approximate is None else graph.op("Gelu", h, approximate=approximate)
    return residual_output(graph, h, x, args, w, f"{p}.output")


def build(args: ModelArgs, w: dict[str, np.ndarray], graph: GraphWriter) -> Built:
    # Positions count real tokens only, so a left-padded row gets the positions it has alone; one
    # segment (token type 0), as sentence-transformers embeds a text.
    counts = graph.op("CumSum", INPUTS[1], graph.constant(np.int32(1)))
    positions = graph.op(
        "Max", graph.op("Sub", counts, graph.constant(np.int32(1))), graph.constant(np.int32(0))
    )
    words = graph.op(
        "Gather",
        graph.constant(w["embeddings.word_embeddings.weight"], "embeddings.word_embeddings.weight"),
        INPUTS[0],
    )
    position_table = graph.constant(
        w["embeddings.position_embeddings.weight"], "embeddings.position_embeddings.weight"
    )
    h = graph.op("Add", words, graph.op("Gather", position_table, positions))
    h = graph.op(
        "Add", h, graph.constant(w["embeddings.token_type_embeddings.weight"][0], "embeddings.token_type_0")
    )
    h = layer_norm(graph, h, args, w, "embeddings.LayerNorm")
    mask = attention_mask(graph, causal=False)
    for i in range(args.num_hidden_layers):
        p = f"encoder.layer.{i}"
        h = mlp(graph, attention(graph, h, args, w, f"{p}.attention", mask), args, w, p)
    return Built(graph.model(h), head=[], dimension=args.hidden_size)
