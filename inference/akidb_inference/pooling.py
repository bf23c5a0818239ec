"""Pooling of final hidden states (batch, tokens, hidden) into one vector per input."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def pool_last_token(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """The hidden state of each row's last real token, whichever side the padding is on."""
    last = attention_mask.shape[1] - 1 - np.argmax(attention_mask[:, ::-1], axis=1)
    pooled: np.ndarray = hidden[np.arange(hidden.shape[0]), last]
    return pooled


def pool_mean(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """The mean of the real tokens' hidden states (prompt and special tokens included)."""
    weights = attention_mask.astype(hidden.dtype)
    counts = np.maximum(weights.sum(axis=1, keepdims=True), 1)
    pooled: np.ndarray = np.einsum("bth,bt->bh", hidden, weights) / counts
    return pooled


POOLING: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "last_token": pool_last_token,
    "mean": pool_mean,
}
