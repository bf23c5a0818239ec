"""Shared pieces of the ONNX graph writers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Built:
    """What a writer's `build` returns."""

    graph: Any
    """The `onnx.ModelProto` of the transformer (input ids and mask -> final hidden states)."""
    head: list[np.ndarray]
    """Weights (out, in) applied in turn to pooled vectors (EmbeddingGemma's Dense layers)."""
    dimension: int
