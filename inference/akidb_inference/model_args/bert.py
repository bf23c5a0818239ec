"""bert hyper-parameters (config.json fields the model files read) and weight names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from . import BaseModelArgs

T = TypeVar("T")

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")
"""`hidden_act` values every backend implements."""


@dataclass
class ModelArgs(BaseModelArgs):
    model_type: str
    hidden_size: int
    num_hidden_layers: int
    intermediate_size: int
    num_attention_heads: int
    vocab_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    position_embedding_type: str = "absolute"

    def __post_init__(self) -> None:
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(
                f"hidden_act {self.hidden_act!r} is not supported; supported: {sorted(ACTIVATIONS)}"
            )
        if self.position_embedding_type != "absolute":
            raise ValueError(f"position_embedding_type {self.position_embedding_type!r}; supported: absolute")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size is not a multiple of num_attention_heads")


def sanitize(weights: Mapping[str, T]) -> dict[str, T]:
    """Strip the `bert.` (BertFor* heads) or `model.` (MLX conversions) prefix; drop the pooler and
    task heads (mean pooling uses neither) and the stored position_ids buffer. Every backend's
    rename is this one."""
    sanitized = {}
    for key, value in weights.items():
        for prefix in ("bert.", "model."):
            key = key.removeprefix(prefix)
        if key.startswith(("pooler.", "cls.")) or key == "embeddings.position_ids":
            continue
        sanitized[key] = value
    return sanitized
