"""BERT encoder (sentence-transformers models such as all-MiniLM-L6-v2): absolute position and
token type embeddings, post-LayerNorm blocks, bidirectional attention."""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn

from ....model_args.bert import ModelArgs, sanitize
from .base import Mask, attention_mask

_ACTIVATIONS: dict[str, Callable[[mx.array], mx.array]] = {
    "gelu": nn.gelu,
    "gelu_new": nn.gelu_approx,
    "gelu_pytorch_tanh": nn.gelu_approx,
    "relu": nn.relu,
}


class Embeddings(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.word_embeddings = nn.Embedding(args.vocab_size, args.hidden_size)
        self.position_embeddings = nn.Embedding(args.max_position_embeddings, args.hidden_size)
        self.token_type_embeddings = nn.Embedding(args.type_vocab_size, args.hidden_size)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)

    def __call__(self, input_ids: mx.array, padding_mask: mx.array, token_type_ids: mx.array) -> mx.array:
        # Positions count real tokens only, so a left-padded row gets the positions it has alone.
        positions = mx.maximum(mx.cumsum(padding_mask.astype(mx.int32), axis=1) - 1, 0)
        h = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        return self.LayerNorm(h + self.token_type_embeddings(token_type_ids))


class SelfAttention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        dim = args.hidden_size
        self.n_heads = args.num_attention_heads
        self.scale = (dim // self.n_heads) ** -0.5
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)

    def __call__(self, x: mx.array, mask: Mask) -> mx.array:
        B, L, _ = x.shape
        queries, keys, values = (
            proj(x).reshape(B, L, self.n_heads, -1).transpose(0, 2, 1, 3)
            for proj in (self.query, self.key, self.value)
        )
        output = mx.fast.scaled_dot_product_attention(queries, keys, values, scale=self.scale, mask=mask)
        return output.transpose(0, 2, 1, 3).reshape(B, L, -1)


class ResidualOutput(nn.Module):
    """BERT's post-norm step after attention and after the MLP: LayerNorm(residual + dense(h))."""

    def __init__(self, in_dims: int, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(in_dims, args.hidden_size)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)

    def __call__(self, h: mx.array, residual: mx.array) -> mx.array:
        return self.LayerNorm(residual + self.dense(h))


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.self = SelfAttention(args)
        self.output = ResidualOutput(args.hidden_size, args)

    def __call__(self, x: mx.array, mask: Mask) -> mx.array:
        return self.output(self.self(x, mask), x)


class MLP(nn.Module):
    """The first half of BERT's MLP (`intermediate`); the block's `output` is the second."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.intermediate_size)
        self.activation = _ACTIVATIONS[args.hidden_act]

    def __call__(self, x: mx.array) -> mx.array:
        return self.activation(self.dense(x))


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention = Attention(args)
        self.intermediate = MLP(args)
        self.output = ResidualOutput(args.intermediate_size, args)

    def __call__(self, x: mx.array, mask: Mask) -> mx.array:
        h = self.attention(x, mask)
        return self.output(self.intermediate(h), h)


class Encoder(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.layer = [TransformerBlock(args) for _ in range(args.num_hidden_layers)]


class Model(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embeddings = Embeddings(args)
        self.encoder = Encoder(args)

    @property
    def dimension(self) -> int:
        return self.args.hidden_size

    def __call__(
        self, input_ids: mx.array, padding_mask: mx.array, token_type_ids: mx.array | None = None
    ) -> mx.array:
        """`token_type_ids` default to 0: one segment, as sentence-transformers embeds a text."""
        if token_type_ids is None:
            token_type_ids = mx.zeros_like(input_ids)
        h = self.embeddings(input_ids, padding_mask, token_type_ids)
        mask = attention_mask(padding_mask, causal=False)
        for layer in self.encoder.layer:
            h = layer(h, mask)
        return h

    def project(self, pooled: mx.array) -> mx.array:
        return pooled

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        return sanitize(weights)
