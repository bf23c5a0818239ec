"""qwen3 hyper-parameters (config.json fields the model files read) and weight names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from . import BaseModelArgs

T = TypeVar("T")


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
    rope_theta: float
    max_position_embeddings: int
    attention_bias: bool = False


def sanitize(weights: Mapping[str, T], prefix: str = "") -> dict[str, T]:
    """Drop the language-model head (embeddings only) and rotary buffers; name the rest as Qwen3Model
    does, under `prefix` (`model.` where a backend's module tree has it), whether or not the
    checkpoint has `model.` (Qwen3Model checkpoints lack it). Every backend's rename is this one."""
    return {
        prefix + key.removeprefix("model."): value
        for key, value in weights.items()
        if not key.startswith("lm_head.") and "rotary_emb.inv_freq" not in key
    }
