"""The embedding engine: tokenization, prompts, batching, pooling and Matryoshka truncation.

Everything here is backend-agnostic; the forward pass lives behind `backends.Backend`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tokenizers import Tokenizer

from .architectures import ARCHITECTURES
from .backends import Backend, BackendOptions, Device, load_backend
from .checkpoint import Checkpoint, ModelLoadError, Quantization, read_checkpoint
from .pooling import POOLING
from .prompts import apply_prompt, resolve_prompts

__all__ = [
    "BackendOptions",
    "Device",
    "Embedder",
    "Embeddings",
    "Encoded",
    "InputTooLong",
    "InputType",
    "ModelInfo",
    "ModelLoadError",
    "NonFiniteEmbedding",
    "Quantization",
    "load_embedder",
]

InputType = Literal["query", "document"]

CHARS_PER_TOKEN_GUESS = 8
"""Characters per token the first tokenization of a long text assumes (tokenizers average 3-5 on
prose); a text that needs more is tokenized again with twice the characters."""
CUT_MARGIN_TOKENS = 16
"""Tokens that must follow the kept ones in a cut text. A cut can change how the word it falls in
is tokenized; BPE merges and WordPiece matches are local, so that change stays within the last few
tokens (tests compare cut and whole tokenizations of long texts)."""
MIN_BUCKET = 16
"""Smallest padded width with shape buckets (on CUDA): widths and row counts are padded to powers of
two, so few shapes repeat and the warm-up runs each one before the model is ready (MLX on CUDA
compiles a kernel variant on its first use, 15-19 s each on an H200; ONNX Runtime on CUDA captures a
CUDA graph per small shape; docs/inference.md)."""

MIN_ROW_FILL = 0.5
"""An input joins a batch only when it is more than this fraction of the batch's padded width.
Padding costs what real tokens do (a CPU computes every position), and longest-first packing alone
padded 300 Debian package descriptions (MiniLM, batches of 32) to 65.6k tokens for 24.2k real
ones; with this rule 32.4k, so twice as fast on a CPU. With shape buckets each batch is one bucket."""


@dataclass(frozen=True)
class ModelInfo:
    """What the loaded model produces; the server reports it and validates requests against it."""

    architecture: str
    """The checkpoint's `model_type`, a key of `architectures.ARCHITECTURES`."""
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
    backend: str
    """"mlx" or "onnx"."""
    device: str
    """What computes: "cpu", "metal", or "cuda:<GPU name>" (e.g. "cuda:NVIDIA H200")."""


@dataclass(frozen=True)
class Encoded:
    """One input as the model computes it."""

    ids: list[int]
    """Special tokens around prompt + text, at most `ModelInfo.max_tokens` of them."""
    truncated: bool
    """The input had more tokens than `max_tokens` and `ids` holds the first of them."""


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray
    """(n, d) float32, in input order."""
    token_counts: list[int]
    """Tokens computed per input, after truncation."""
    truncated: list[bool]
    """Per input: whether it was cut at `max_tokens`."""


class InputTooLong(Exception):
    """An input has more tokens than the model accepts and truncation was off."""

    def __init__(self, index: int, max_tokens: int) -> None:
        super().__init__(f"input {index} has more tokens than the model's limit of {max_tokens}")
        self.index = index
        self.max_tokens = max_tokens


class NonFiniteEmbedding(Exception):
    """The model produced a NaN or infinite value for an input."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"the embedding of input {index} is not finite: {reason}")
        self.index = index
        self.reason = reason


class Embedder:
    """A loaded model: texts in, vectors out. Not thread-safe: call `embed` and `embed_encoded` from
    one thread at a time."""

    info: ModelInfo

    def __init__(
        self,
        info: ModelInfo,
        tokenizer: Tokenizer,
        backend: Backend,
        *,
        bos_id: int | None,
        eos_id: int,
        max_batch_tokens: int,
        shape_buckets: bool | None = None,
    ) -> None:
        """`shape_buckets`: pad batches of up to `max_batch_tokens` padded tokens to power-of-two
        shapes (`MIN_BUCKET` wide at least) and warm each shape up; None leaves it to the backend's
        `bucket_tokens` (on CUDA: every batch for MLX, whose first use of a shape can compile kernels
        for seconds; small batches for ONNX Runtime, which replays a CUDA graph per shape)."""
        self.info = info
        self._tokenizer = tokenizer
        self._backend = backend
        self._prefix = [] if bos_id is None else [bos_id]
        self._suffix = [eos_id]
        self._max_batch_tokens = max_batch_tokens
        self._bucket_tokens = (
            min(backend.bucket_tokens, max_batch_tokens)
            if shape_buckets is None
            else (max_batch_tokens if shape_buckets else 0)
        )
        """Padded batches of at most this many tokens get bucket shapes; 0: none do."""

    def tokenize(self, texts: Sequence[str], input_type: InputType) -> list[Encoded]:
        """Each text with its prompt and special tokens, cut to `info.max_tokens`.

        The only place text is tokenized. A long text is tokenized only as far as the cut needs
        (see `_prefix_ids`), so a multi-megabyte input costs about what a `max_tokens` one does.
        Safe to call from other threads while `embed_encoded` runs: it only reads the tokenizer,
        whose settings are never changed after load.
        """
        room = self.info.max_tokens - len(self._prefix) - len(self._suffix)
        prompted = [apply_prompt(self.info.prompts, input_type, text) for text in texts]
        return [
            Encoded(self._prefix + ids[:room] + self._suffix, truncated=len(ids) > room)
            for ids in self._prefix_ids(prompted, room)
        ]

    def embed(
        self,
        texts: Sequence[str],
        input_type: InputType,
        *,
        truncate: bool = True,
        normalize: bool = True,
        dimensions: int | None = None,
    ) -> Embeddings:
        """Embed `texts` in input order: `tokenize`, then `embed_encoded`.

        Inputs over `info.max_tokens` are cut to it (keeping the special tokens) when `truncate`,
        else `InputTooLong` is raised for the first.
        """
        encoded = self.tokenize(texts, input_type)
        if not truncate:
            check_not_truncated(encoded, self.info.max_tokens)
        vectors = self.embed_encoded(encoded, normalize=normalize, dimensions=dimensions)
        return Embeddings(
            vectors=vectors,
            token_counts=[len(e.ids) for e in encoded],
            truncated=[e.truncated for e in encoded],
        )

    def embed_encoded(
        self, encoded: Sequence[Encoded], *, normalize: bool = True, dimensions: int | None = None
    ) -> np.ndarray:
        """(n, d) float32 vectors of `tokenize`'s results, in input order.

        `dimensions` (one of `info.matryoshka_dimensions`) keeps the leading components,
        re-normalised when `normalize`. Raises `NonFiniteEmbedding` rather than returning a NaN.
        """
        assert dimensions is None or dimensions in self.info.matryoshka_dimensions, dimensions
        sequences = [e.ids for e in encoded]
        vectors = np.empty((len(sequences), self._backend.dimension), dtype=np.float32)
        for batch in self._batches([len(ids) for ids in sequences]):
            vectors[batch] = self._embed_batch([sequences[i] for i in batch])
        _check_finite(vectors, "model output")
        if dimensions is not None:
            vectors = vectors[:, :dimensions]
        if normalize:
            vectors = _normalized(vectors)
        return np.ascontiguousarray(vectors)

    def warm_up(self) -> float:
        """Run one real one-token forward pass (and the head); with shape buckets, also one pass
        of every bucket shape serving can use, so no request pays for compiling it. Returns the
        duration in seconds."""
        started = time.perf_counter()
        self._embed_batch([self._suffix])
        if self._bucket_tokens:
            for rows, width in self.bucket_shapes():
                # One token short of the width, so the padded-batch path (an attention mask) runs;
                # a lone input may also fill its width exactly (no mask).
                self._embed_batch([self._suffix * (width - 1)] * rows)
                if rows == 1:
                    self._embed_batch([self._suffix * width])
        return time.perf_counter() - started

    def bucket_shapes(self) -> list[tuple[int, int]]:
        """(rows, width) of every padded batch `embed` can compute with shape buckets."""
        widths = sorted(
            {self._padded_width(MIN_BUCKET << k) for k in range(32) if MIN_BUCKET << k <= self._bucket_tokens}
        )
        shapes = []
        for width in widths:
            cap = self._row_cap(width)
            shapes += [(1 << k, width) for k in range(cap.bit_length()) if 1 << k < cap] + [(cap, width)]
        return shapes

    def _padded_width(self, width: int) -> int:
        """The bucket a batch of longest input `width` is padded to (itself when not bucketed)."""
        if not self._bucket_tokens:
            return width
        padded = min(_next_power_of_two(max(width, MIN_BUCKET)), self.info.max_tokens)
        return padded if padded <= self._bucket_tokens else width

    def _row_cap(self, width: int) -> int:
        """Most rows of a bucket shape `width` wide (1 where the width is beyond the buckets)."""
        return max(self._bucket_tokens // width, 1)

    def _prefix_ids(self, texts: Sequence[str], room: int) -> list[list[int]]:
        """Token ids of each text (no special tokens): all of them, or, for a text with more than
        `room`, at least its first `room + CUT_MARGIN_TOKENS`.

        A text is first tokenized up to `room + CUT_MARGIN_TOKENS` times `CHARS_PER_TOKEN_GUESS`
        characters; a cut text that gave too few tokens (runs of whitespace that the tokenizer
        drops, say) is tried again with twice the characters, so the work stays within about twice
        what the text's first `room` tokens need. A cut can change how the word it falls in is
        tokenized, so only tokens with `CUT_MARGIN_TOKENS` more after them are kept.
        """
        # The special tokens are added by `tokenize`: tokenizer.json files differ in what their
        # post-processor adds (the LLM tokenizers omit Qwen3-Embedding's <|endoftext|>).
        wanted = room + CUT_MARGIN_TOKENS
        window = wanted * CHARS_PER_TOKEN_GUESS
        encodings = self._tokenizer.encode_batch([text[:window] for text in texts], add_special_tokens=False)
        result = []
        for text, encoding in zip(texts, encodings, strict=True):
            ids: list[int] = encoding.ids
            cut = window
            while cut < len(text) and len(ids) <= wanted:
                cut *= 2
                ids = self._tokenizer.encode(text[:cut], add_special_tokens=False).ids
            result.append(ids if cut >= len(text) else ids[:wanted])
        return result

    def _batches(self, lengths: list[int]) -> Iterator[list[int]]:
        """Indices grouped longest first so that a batch's padded size stays within the budget and
        every row is more than half real tokens (see `MIN_ROW_FILL`)."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
        batch: list[int] = []
        for index in order:
            # Sorted longest first, so the batch's first entry sets its padded length.
            width = self._padded_width(lengths[batch[0]]) if batch else 0
            if batch and (
                (len(batch) + 1) * width > self._max_batch_tokens
                or self._padded_width(lengths[index]) <= MIN_ROW_FILL * width
            ):
                yield batch
                batch = []
            batch.append(index)
        if batch:
            yield batch

    def _embed_batch(self, sequences: list[list[int]]) -> np.ndarray:
        count = len(sequences)
        longest = max(len(ids) for ids in sequences)
        rows, width = count, self._padded_width(longest)
        if self._bucket_tokens and count <= self._row_cap(width):
            rows = min(_next_power_of_two(count), self._row_cap(width))
        elif self._bucket_tokens:  # more rows than the bucket shapes hold: padding would buy nothing
            width = longest
        input_ids = np.zeros((rows, width), dtype=np.int32)
        attention_mask = np.zeros((rows, width), dtype=np.int32)
        for row, ids in enumerate(sequences):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        hidden = self._backend.forward(input_ids, attention_mask)[:count]
        return self._backend.project(POOLING[self.info.pooling](hidden, attention_mask[:count]))


def _next_power_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


def check_not_truncated(encoded: Sequence[Encoded], max_tokens: int) -> None:
    """Raise `InputTooLong` for the first input that `tokenize` had to cut."""
    for index, item in enumerate(encoded):
        if item.truncated:
            raise InputTooLong(index, max_tokens)


def _check_finite(vectors: np.ndarray, where: str) -> None:
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        index = int(np.argmin(finite))
        kind = "NaN" if np.isnan(vectors[index]).any() else "an infinite value"
        raise NonFiniteEmbedding(index, f"{kind} in the {where}")


def _normalized(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if (zero := norms[:, 0] == 0).any():
        raise NonFiniteEmbedding(int(np.argmax(zero)), "the vector is all zeros and cannot be normalised")
    normalized: np.ndarray = vectors / norms
    return normalized


def load_embedder(
    model_dir: Path,
    *,
    device: Device = "auto",
    max_batch_tokens: int = 16384,
    backend: BackendOptions | None = None,
    shape_buckets: bool | None = None,
) -> Embedder:
    """Load the checkpoint in `model_dir`.

    `device`: "auto" is the GPU when there is one the backend can use, else the CPU.
    `max_batch_tokens` bounds the padded tokens of one forward pass. `backend`: which backend and
    its options (default: "auto"). `shape_buckets`: see `Embedder`. Raises `ModelLoadError`.
    """
    checkpoint = read_checkpoint(model_dir)
    architecture = ARCHITECTURES.get(checkpoint.model_type)
    if architecture is None:
        raise ModelLoadError(
            f"{model_dir / 'config.json'}: model_type {checkpoint.model_type!r} is not supported; "
            f"supported: {', '.join(sorted(ARCHITECTURES))}"
        )
    try:
        tokenizer = Tokenizer.from_file(str(checkpoint.tokenizer_file))
    except Exception as error:  # tokenizers raises a bare Exception for malformed files
        raise ModelLoadError(f"{checkpoint.tokenizer_file} cannot be read: {error}") from error
    # Some tokenizer.json files carry padding or truncation settings; the engine does both itself.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    bos_id = (
        None if architecture.bos_token is None else _token_id(tokenizer, checkpoint, architecture.bos_token)
    )
    eos_id = _token_id(tokenizer, checkpoint, architecture.eos_token)

    computing = load_backend(checkpoint, device, backend)
    info = ModelInfo(
        architecture=checkpoint.model_type,
        dimension=computing.dimension,
        matryoshka_dimensions=architecture.matryoshka_dimensions(computing.dimension),
        max_tokens=_max_tokens(checkpoint),
        pooling=checkpoint.pooling or architecture.pooling,
        prompts=resolve_prompts(checkpoint.prompts, architecture.prompts),
        quantization=checkpoint.quantization,
        dtype="float32",
        backend=computing.name,
        device=computing.device,
    )
    return Embedder(
        info,
        tokenizer,
        computing,
        bos_id=bos_id,
        eos_id=eos_id,
        max_batch_tokens=max_batch_tokens,
        shape_buckets=shape_buckets,
    )


def _token_id(tokenizer: Tokenizer, checkpoint: Checkpoint, token: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise ModelLoadError(
            f"{checkpoint.tokenizer_file} has no {token} token, which {checkpoint.model_type} needs"
        )
    return int(token_id)


def _max_tokens(checkpoint: Checkpoint) -> int:
    """sentence-transformers' max_seq_length when given, else the model's position limit."""
    limit = checkpoint.max_seq_length or checkpoint.config.get("max_position_embeddings")
    if not isinstance(limit, int) or limit < 2:
        raise ModelLoadError(
            f"{checkpoint.directory}: neither sentence_bert_config.json max_seq_length nor "
            "config.json max_position_embeddings gives the input limit"
        )
    return limit
