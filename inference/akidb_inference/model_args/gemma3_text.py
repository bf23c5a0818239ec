"""gemma3_text hyper-parameters (config.json fields the model files read) and weight names."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from . import BaseModelArgs

T = TypeVar("T")

SLIDING, FULL = "sliding_attention", "full_attention"
"""The two kinds of layer in `layer_types`."""


@dataclass
class ModelArgs(BaseModelArgs):
    model_type: str
    hidden_size: int
    num_hidden_layers: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    vocab_size: int
    query_pre_attn_scalar: float
    sliding_window: int
    rope_theta: float
    """RoPE base of the full-attention layers."""
    use_bidirectional_attention: bool
    max_position_embeddings: int
    rope_local_base_freq: float = 10_000.0
    """RoPE base of the sliding-window layers."""
    layer_types: list[str] | None = None
    sliding_window_pattern: int = 6
    """Every n-th layer is a full-attention one, when `layer_types` is absent."""

    def __post_init__(self) -> None:
        if not self.use_bidirectional_attention:
            raise ValueError("only use_bidirectional_attention=true (EmbeddingGemma) is supported")
        if self.layer_types is None:
            pattern = self.sliding_window_pattern
            self.layer_types = [
                FULL if (i + 1) % pattern == 0 else SLIDING for i in range(self.num_hidden_layers)
            ]
        if unknown := set(self.layer_types) - {SLIDING, FULL}:
            raise ValueError(f"layer_types has {sorted(unknown)}; supported: {SLIDING}, {FULL}")

    @property
    def window_radius(self) -> int:
        """Sliding layers attend |i - j| < radius: transformers turns the configured window into an
        exclusive bound on both sides, window // 2 + 1 (257 for EmbeddingGemma's 512)."""
        return self.sliding_window // 2 + 1


def sanitize(weights: Mapping[str, T], prefix: str = "") -> dict[str, T]:
    """Name the transformer as Gemma3TextModel does, under `prefix` (`model.` where a backend's module
    tree has it; Gemma3TextModel checkpoints lack `model.`), and the Dense head `dense.{i}`:
    sentence-transformers stores it as `{n}_Dense.linear` in module directories (read as
    `{n}_Dense.linear.weight`), MLX conversions as `dense.{i}` in the main file, which wins when both
    are present. Every backend's rename is this one."""
    st_dense = re.compile(r"^(\d+)_Dense\.linear\.")
    has_dense = any(key.startswith("dense.") for key in weights)
    modules = sorted({int(m[1]) for key in weights if (m := st_dense.match(key))})
    sanitized = {}
    for key, value in weights.items():
        if key.startswith("lm_head.") or "rotary_emb" in key:
            continue
        if match := st_dense.match(key):
            if has_dense:
                continue
            key = f"dense.{modules.index(int(match[1]))}.{key[match.end() :]}"
        elif not key.startswith("dense."):
            key = prefix + key.removeprefix("model.")
        sanitized[key] = value
    return sanitized
