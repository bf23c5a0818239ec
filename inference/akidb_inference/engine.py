"""The embedding engine: tokenization, prompts, batching, pooling and Matryoshka truncation.

Everything here is backend-agnostic; the forward pass lives behind `backends.Backend`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

InputType = Literal["query", "document"]
Device = Literal["auto", "gpu", "cpu"]


@dataclass(frozen=True)
class Quantization:
    """How the checkpoint's weights are quantized (MLX affine: w = scales * q + biases per group)."""

    bits: int
    group_size: int
    mode: str


@dataclass(frozen=True)
class ModelInfo:
    """What the loaded model produces; the server reports it and validates requests against it."""

    architecture: str
    """The checkpoint's `model_type`: "qwen3" or "gemma3_text"."""
    dimension: int
    """Full output dimension."""
    matryoshka_dimensions: tuple[int, ...]
    """Dimensions a vector may be truncated to, ascending, including `dimension`."""
    max_tokens: int
    """Longest input in tokens (prompt and special tokens included)."""
    pooling: str
    """"last_token" or "mean"."""
    prompts: Mapping[str, str]
    """Prefix per input type: {"query": ..., "document": ...}."""
    quantization: Quantization | None
    dtype: str
    """Activation dtype, "float32"."""


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray
    """(n, d) float32, in input order."""
    token_counts: list[int]
    """Tokens processed per input, after truncation."""


class ModelLoadError(Exception):
    """The checkpoint cannot be loaded; the message names the directory, file or model_type."""


class InputTooLong(Exception):
    """An input has more tokens than the model accepts and truncation was off."""

    def __init__(self, index: int, tokens: int, max_tokens: int) -> None:
        super().__init__(f"input {index} has {tokens} tokens, more than the model's limit of {max_tokens}")
        self.index = index
        self.tokens = tokens
        self.max_tokens = max_tokens


class NonFiniteEmbedding(Exception):
    """The model produced a NaN or infinite value for an input."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"the embedding of input {index} is not finite: {reason}")
        self.index = index
        self.reason = reason


class Embedder:
    """A loaded model: texts in, vectors out. Not thread-safe: call from one thread at a time."""

    info: ModelInfo

    def count_tokens(self, texts: Sequence[str], input_type: InputType) -> list[int]:
        """Tokens per text, prompt and special tokens included, before truncation."""
        raise NotImplementedError

    def embed(
        self,
        texts: Sequence[str],
        input_type: InputType,
        *,
        truncate: bool = True,
        normalize: bool = True,
        dimensions: int | None = None,
    ) -> Embeddings:
        """Embed `texts` in input order.

        Inputs over `info.max_tokens` are cut to it when `truncate`, else `InputTooLong` is raised
        for the first. `dimensions` (one of `info.matryoshka_dimensions`) keeps the leading
        components, re-normalised when `normalize`. Raises `NonFiniteEmbedding` rather than
        returning a NaN.
        """
        raise NotImplementedError

    def warm_up(self) -> float:
        """Run one real one-token forward pass; returns its duration in seconds."""
        raise NotImplementedError


def load_embedder(model_dir: Path, *, device: Device = "auto", max_batch_tokens: int = 16384) -> Embedder:
    """Load the checkpoint in `model_dir`.

    `device`: "auto" is the GPU when Metal is available, else the CPU. `max_batch_tokens` bounds
    the padded tokens of one forward pass. Raises `ModelLoadError`.
    """
    raise NotImplementedError
