"""The architectures the inference process serves, by checkpoint `model_type`, and what the engine
knows about each beyond its checkpoint files: the one list of them. A backend computes an
architecture when it has a model file of that name (`backends/mlx/models/<model_type>.py`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


@dataclass(frozen=True)
class SizeRange:
    """Every integer size from `min` to `max`."""

    min: int
    max: int


def compact_sizes(sizes: Sequence[int]) -> list[int] | SizeRange:
    """Matryoshka sizes as the contract's `MatryoshkaDimensions` gives them: a run of more than two
    consecutive sizes as its range (Qwen3-Embedding's 32..1024 would be 993 numbers), others as a
    sorted list."""
    ordered = sorted(sizes)
    if len(ordered) > 2 and ordered[-1] - ordered[0] == len(ordered) - 1:
        return SizeRange(ordered[0], ordered[-1])
    return ordered


def describe_sizes(sizes: Sequence[int]) -> str:
    """For messages: "32..1024" for a range, "128, 256, 512, 768" for a list."""
    compact = compact_sizes(sizes)
    if isinstance(compact, SizeRange):
        return f"{compact.min}..{compact.max}"
    return ", ".join(str(size) for size in compact)


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
