"""qwen3 hyper-parameters (config.json fields the model files read)."""

from __future__ import annotations

from dataclasses import dataclass

from . import BaseModelArgs


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
