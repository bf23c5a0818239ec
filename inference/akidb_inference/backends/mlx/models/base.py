"""Shared pieces of the MLX model files."""

from __future__ import annotations

from typing import Literal

import mlx.core as mx

Mask = mx.array | Literal["causal"] | None
"""What `mx.fast.scaled_dot_product_attention` takes as `mask`."""


def attention_mask(padding_mask: mx.array, *, causal: bool, window: int | None = None) -> Mask:
    """The mask for `mx.fast.scaled_dot_product_attention`, True where query i may attend key j.

    Padding keys are hidden. `window` keeps |i - j| < window. Every query sees itself, so a padding
    row never has all keys masked (its softmax would be NaN, and 0 * NaN leaks into real rows).
    Without padding or window, the "causal" or no mask lets MLX use its fused kernels, which never
    materialise a (tokens, tokens) matrix.
    """
    length = padding_mask.shape[1]
    if padding_mask.all().item() and (window is None or window >= length):
        return "causal" if causal else None
    positions = mx.arange(length)
    query, key = positions[:, None], positions[None, :]
    allowed = padding_mask.astype(mx.bool_)[:, None, None, :]
    if causal:
        allowed = allowed & (key <= query)
    if window is not None:
        allowed = allowed & (mx.abs(query - key) < window)
    return allowed | (query == key)
