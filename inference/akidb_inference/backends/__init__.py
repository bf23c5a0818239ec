"""The seam between the engine and a compute library.

A backend turns a checkpoint into two functions on numpy arrays: the transformer's forward pass
over a padded batch, and the model's head on pooled vectors. Tokenization, prompts, batching,
pooling and Matryoshka truncation stay in the engine, so another backend (ONNX Runtime) only
implements this Protocol.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

from ..checkpoint import Checkpoint

Device = Literal["auto", "gpu", "cpu"]


class Backend(Protocol):
    @property
    def dimension(self) -> int:
        """Size of the vectors `project` returns."""
        ...

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Final hidden states (batch, tokens, hidden) float32 of a padded batch.

        `input_ids` (batch, tokens) int32; `attention_mask` (batch, tokens) is 1 on real tokens.
        A real token's state does not depend on padding.
        """
        ...

    def project(self, pooled: np.ndarray) -> np.ndarray:
        """The model's head (e.g. EmbeddingGemma's Dense layers) on pooled vectors; float32."""
        ...


def load_backend(checkpoint: Checkpoint, device: Device) -> Backend:
    """Load the checkpoint's weights; raises `ModelLoadError`. MLX is the only backend so far."""
    from .mlx import MLXBackend

    return MLXBackend.load(checkpoint, device)
