"""Qwen3 (Qwen3-Embedding) as an ONNX graph: causal decoder with q/k RMSNorm, RoPE and grouped
key/value heads."""

from __future__ import annotations

import numpy as np

from ....model_args.qwen3 import ModelArgs
from ....model_args.qwen3 import sanitize as sanitize
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


def attention(
    graph: GraphWriter, x: str, args: ModelArgs, w: dict[str, np.ndarray], p: str, **shared: str
) -> str:
    eps, head_dim = args.rms_norm_eps, args.head_dim

    def projected(name: str) -> str:
        return graph.linear(x, w[f"{p}.{name}.weight"], w.get(f"{p}.{name}.bias"), f"{p}.{name}")

    def normed(name: str, norm: str) -> str:
        heads = rms_norm(
            graph, split_heads(graph, projected(name), head_dim), w[f"{p}.{norm}.weight"], eps, f"{p}.{norm}"
        )
        return merge_heads(graph, heads)

    def rotated(value: str, heads: int) -> str:
        return graph.op(
            "RotaryEmbedding", value, shared["cos"], shared["sin"], shared["positions"], num_heads=heads
        )

    queries = rotated(normed("q_proj", "q_norm"), args.num_attention_heads)
    keys = rotated(normed("k_proj", "k_norm"), args.num_key_value_heads)
    output = graph.op(
        "Attention",
        queries,
        keys,
        projected("v_proj"),
        shared["mask"],
        q_num_heads=args.num_attention_heads,
        kv_num_heads=args.num_key_value_heads,
        scale=head_dim**-0.5,
    )
    return graph.linear(output, w[f"{p}.o_proj.weight"], w.get(f"{p}.o_proj.bias"), f"{p}.o_proj")


def mlp(graph: GraphWriter, x: str, w: dict[str, np.ndarray], p: str) -> str:
    gate = graph.linear(x, w[f"{p}.gate_proj.weight"], name=f"{p}.gate_proj")
    up = graph.linear(x, w[f"{p}.up_proj.weight"], name=f"{p}.up_proj")
    return graph.linear(
        graph.op("Mul", graph.op("Mul", gate, graph.op("Sigmoid", gate)), up),
        w[f"{p}.down_proj.weight"],
        name=f"{p}.down_proj",
    )


def build(args: ModelArgs, w: dict[str, np.ndarray], graph: GraphWriter) -> Built:
    eps = args.rms_norm_eps
    cos, sin = rope_cache(graph, args.head_dim, args.rope_theta, args.max_position_embeddings, "rope")
    shared = {
        "cos": cos,
        "sin": sin,
        "mask": attention_mask(graph, causal=True),
        "positions": position_ids(graph),
    }
    h = graph.op("Gather", graph.constant(w["embed_tokens.weight"], "embed_tokens.weight"), INPUTS[0])
    for i in range(args.num_hidden_layers):
        p = f"layers.{i}"
        h = graph.op(
            "Add",
            h,
            attention(
                graph,
                rms_norm(graph, h, w[f"{p}.input_layernorm.weight"], eps, f"{p}.input_layernorm"),
                args,
                w,
                f"{p}.self_attn",
                **shared,
            ),
        )
        h = graph.op(
            "Add",
            h,
            mlp(
                graph,
                rms_norm(
                    graph, h, w[f"{p}.post_attention_layernorm.weight"], eps, f"{p}.post_attention_layernorm"
                ),
                w,
                f"{p}.mlp",
            ),
        )
    return Built(
        graph.model(rms_norm(graph, h, w["norm.weight"], eps, "norm")), head=[], dimension=args.hidden_size
    )
