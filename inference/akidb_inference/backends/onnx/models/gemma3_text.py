"""Gemma 3 text model as EmbeddingGemma uses it, as an ONNX graph: bidirectional attention,
sliding-window layers mixed with full layers; the Dense head (hidden -> 4 * hidden -> hidden) is
returned for the backend to apply after pooling. Activations stay float32 (float16 overflows)."""

from __future__ import annotations

import math

import numpy as np

from ....model_args import gemma3_text as gemma3_args
from ....model_args.gemma3_text import FULL, SLIDING, ModelArgs
from ..graph import (
    INPUTS,
    GraphWriter,
    attention_mask,
    merge_heads,
    position_ids,
    rms_norm,
    rope_cache,
    split_heads,
)
from .base import Built


def sanitize(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The shared names (`model_args.gemma3_text.sanitize`); Gemma's RMSNorm scales by
    (1 + weight): stored here as the scale itself."""
    return {
        key: 1.0 + value if key.endswith("norm.weight") else value
        for key, value in gemma3_args.sanitize(weights).items()
    }


def attention(
    graph: GraphWriter,
    x: str,
    args: ModelArgs,
    w: dict[str, np.ndarray],
    p: str,
    rope: tuple[str, str],
    **shared: str,
) -> str:
    eps, head_dim = args.rms_norm_eps, args.head_dim

    def projected(name: str) -> str:
        return graph.linear(x, w[f"{p}.{name}.weight"], name=f"{p}.{name}")

    def rotated(name: str, norm: str, heads: int) -> str:
        normed = rms_norm(
            graph, split_heads(graph, projected(name), head_dim), w[f"{p}.{norm}.weight"], eps, f"{p}.{norm}"
        )
        return graph.op(
            "RotaryEmbedding", merge_heads(graph, normed), *rope, shared["positions"], num_heads=heads
        )

    output = graph.op(
        "Attention",
        rotated("q_proj", "q_norm", args.num_attention_heads),
        rotated("k_proj", "k_norm", args.num_key_value_heads),
        projected("v_proj"),
        shared["mask"],
        q_num_heads=args.num_attention_heads,
        kv_num_heads=args.num_key_value_heads,
        scale=args.query_pre_attn_scalar**-0.5,
    )
    return graph.linear(output, w[f"{p}.o_proj.weight"], name=f"{p}.o_proj")


def mlp(graph: GraphWriter, x: str, w: dict[str, np.ndarray], p: str) -> str:
    gate = graph.op(
        "Gelu", graph.linear(x, w[f"{p}.gate_proj.weight"], name=f"{p}.gate_proj"), approximate="tanh"
    )
    up = graph.linear(x, w[f"{p}.up_proj.weight"], name=f"{p}.up_proj")
    return graph.linear(graph.op("Mul", gate, up), w[f"{p}.down_proj.weight"], name=f"{p}.down_proj")


def build(args: ModelArgs, w: dict[str, np.ndarray], graph: GraphWriter) -> Built:
    eps = args.rms_norm_eps
    positions = args.max_position_embeddings
    ropes = {
        SLIDING: rope_cache(graph, args.head_dim, args.rope_local_base_freq, positions, "rope_local"),
        FULL: rope_cache(graph, args.head_dim, args.rope_theta, positions, "rope_global"),
    }
    masks = {
        SLIDING: attention_mask(graph, causal=False, window=args.window_radius),
        FULL: attention_mask(graph, causal=False),
    }
    shared = {"positions": position_ids(graph)}
    # Gemma scales embeddings by sqrt(hidden); scaling the table gives the same products.
    table = w["embed_tokens.weight"] * np.float32(math.sqrt(args.hidden_size))
    h = graph.op("Gather", graph.constant(table, "embed_tokens.weight"), INPUTS[0])
    for i, layer_type in enumerate(args.layer_types or []):
        p = f"layers.{i}"

        def norm(x: str, name: str, p: str = p) -> str:
            return rms_norm(graph, x, w[f"{p}.{name}.weight"], eps, f"{p}.{name}")

        attended = attention(
            graph,
            norm(h, "input_layernorm"),
            args,
            w,
            f"{p}.self_attn",
            ropes[layer_type],
            mask=masks[layer_type],
            **shared,
        )
        h = graph.op("Add", h, norm(attended, "post_attention_layernorm"))
        fed = mlp(graph, norm(h, "pre_feedforward_layernorm"), w, f"{p}.mlp")
        h = graph.op("Add", h, norm(fed, "post_feedforward_layernorm"))
    head = [w["dense.0.weight"], w["dense.1.weight"]]
    return Built(
        graph.model(rms_norm(graph, h, w["norm.weight"], eps, "norm")), head=head, dimension=head[-1].shape[0]
    )
