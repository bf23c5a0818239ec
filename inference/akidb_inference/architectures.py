"""What the engine knows about each model family beyond its checkpoint files, by `model_type`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from . import prompts


@dataclass(frozen=True)
class Architecture:
    pooling: str
    """Used when the checkpoint has no Pooling module config."""
    prompts: Mapping[str, str]
    """Used for input types config_sentence_transformers.json does not name."""
    bos_token: str | None
    """Every input starts with this token."""
    eos_token: str
    """Every input ends with this token (last-token pooling reads its hidden state)."""
    matryoshka_dimensions: Callable[[int], tuple[int, ...]]
    """The dimensions a vector of the given full dimension may be truncated to, ascending."""


def _any_from_32(dimension: int) -> tuple[int, ...]:
    return tuple(range(min(32, dimension), dimension + 1))


def _full_only(dimension: int) -> tuple[int, ...]:
    return (dimension,)


def _embedding_gemma_mrl(dimension: int) -> tuple[int, ...]:
    return (*(d for d in (128, 256, 512) if d < dimension), dimension)


ARCHITECTURES: dict[str, Architecture] = {
    # Qwen3-Embedding: trained with MRL for any size from 32; pools the appended <|endoftext|>.
    "qwen3": Architecture(
        pooling="last_token",
        prompts=prompts.QWEN3,
        bos_token=None,
        eos_token="<|endoftext|>",
        matryoshka_dimensions=_any_from_32,
    ),
    # EmbeddingGemma: MRL at 512, 256 and 128.
    "gemma3_text": Architecture(
        pooling="mean",
        prompts=prompts.EMBEDDING_GEMMA,
        bos_token="<bos>",
        eos_token="<eos>",
        matryoshka_dimensions=_embedding_gemma_mrl,
    ),
    # BERT (all-MiniLM-L6-v2 and other sentence-transformers encoders): [CLS] text [SEP], no prompts.
    "bert": Architecture(
        pooling="mean",
        prompts=prompts.NONE,
        bos_token="[CLS]",
        eos_token="[SEP]",
        matryoshka_dimensions=_full_only,
    ),
}
