"""Gemma 3 text model as EmbeddingGemma uses it: bidirectional attention, sliding-window layers
mixed with full layers, and a Dense head (hidden -> 4 * hidden -> hidden) after pooling."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from ....model_args.gemma3_text import SLIDING, ModelArgs, sanitize
from .base import Mask, attention_mask


class RMSNorm(nn.Module):
    """Gemma's RMSNorm scales by (1 + weight)."""

    def __init__(self, dims: int, eps: float):
        super().__init__()
        self.weight = mx.zeros((dims,))
        self.eps = eps

    def __call__(self, x: mx.array) -> mx.array:
        return mx.fast.rms_norm(x, 1.0 + self.weight, self.eps)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs, is_sliding: bool):
        super().__init__()
        dim, head_dim = args.hidden_size, args.head_dim
        self.n_heads = args.num_attention_heads
        self.n_kv_heads = args.num_key_value_heads
        self.scale = args.query_pre_attn_scalar**-0.5

        self.q_proj = nn.Linear(dim, self.n_heads * head_dim, bias=False)
        self.k_proj = nn.Linear(dim, self.n_kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(dim, self.n_kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * head_dim, dim, bias=False)

        self.q_norm = RMSNorm(head_dim, eps=args.rms_norm_eps)
        self.k_norm = RMSNorm(head_dim, eps=args.rms_norm_eps)
        base = args.rope_local_base_freq if is_sliding else args.rope_theta
        self.rope = nn.RoPE(head_dim, traditional=False, base=base)

    def __call__(self, x: mx.array, mask: Mask) -> mx.array:
        B, L, _ = x.shape
        queries = self.q_norm(self.q_proj(x).reshape(B, L, self.n_heads, -1)).transpose(0, 2, 1, 3)
        keys = self.k_norm(self.k_proj(x).reshape(B, L, self.n_kv_heads, -1)).transpose(0, 2, 1, 3)
        values = self.v_proj(x).reshape(B, L, self.n_kv_heads, -1).transpose(0, 2, 1, 3)

        queries, keys = self.rope(queries), self.rope(keys)
        output = mx.fast.scaled_dot_product_attention(queries, keys, values, scale=self.scale, mask=mask)
        return self.o_proj(output.transpose(0, 2, 1, 3).reshape(B, L, -1))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.down_proj = nn.Linear(hidden_dim, dim, bias=False)
        self.up_proj = nn.Linear(dim, hidden_dim, bias=False)

    def __call__(self, x: mx.array) -> mx.array:
        return self.down_proj(nn.gelu_approx(self.gate_proj(x)) * self.up_proj(x))


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs, is_sliding: bool):
        super().__init__()
        self.is_sliding = is_sliding
        self.self_attn = Attention(args, is_sliding)
        self.mlp = MLP(args.hidden_size, args.intermediate_size)
        self.input_layernorm = RMSNorm(args.hidden_size, eps=args.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(args.hidden_size, eps=args.rms_norm_eps)
        self.pre_feedforward_layernorm = RMSNorm(args.hidden_size, eps=args.rms_norm_eps)
        self.post_feedforward_layernorm = RMSNorm(args.hidden_size, eps=args.rms_norm_eps)

    def __call__(self, x: mx.array, mask: Mask) -> mx.array:
        h = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), mask))
        return h + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(h)))


class Gemma3Model(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embed_tokens = nn.Embedding(args.vocab_size, args.hidden_size)
        self.layers = [
            TransformerBlock(args, is_sliding=layer_type == SLIDING) for layer_type in args.layer_types or []
        ]
        self.norm = RMSNorm(args.hidden_size, eps=args.rms_norm_eps)

    def __call__(self, input_ids: mx.array, padding_mask: mx.array) -> mx.array:
        h = self.embed_tokens(input_ids)
        h = h * mx.array(self.args.hidden_size**0.5, dtype=h.dtype)
        full_mask = attention_mask(padding_mask, causal=False)
        sliding_mask = attention_mask(padding_mask, causal=False, window=self.args.window_radius)
        for layer in self.layers:
            h = layer(h, sliding_mask if layer.is_sliding else full_mask)
        return self.norm(h)


class Model(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.model = Gemma3Model(args)
        self.dense = [
            nn.Linear(args.hidden_size, 4 * args.hidden_size, bias=False),
            nn.Linear(4 * args.hidden_size, args.hidden_size, bias=False),
        ]

    @property
    def dimension(self) -> int:
        return self.args.hidden_size

    def __call__(self, input_ids: mx.array, padding_mask: mx.array) -> mx.array:
        return self.model(input_ids, padding_mask)

    def project(self, pooled: mx.array) -> mx.array:
        for layer in self.dense:
            pooled = layer(pooled)
        return pooled

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        return sanitize(weights, prefix="model.")
