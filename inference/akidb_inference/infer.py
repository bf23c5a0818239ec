"""One embedding request between the HTTP handler and the model thread: checked against the model and
the limits, its texts tokenized once, then an `EmbeddingJob` that the `ModelWorker` runs.

Nothing here knows HTTP; failures are the `errors.ApiError` kinds the handlers' table maps to statuses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .architectures import describe_sizes
from .engine import Embedder, Encoded, InputTooLong, NonFiniteEmbedding, check_not_truncated
from .errors import InvalidInput, InvalidOutput, Overloaded, TooLarge
from .logs import log, record_stage
from .schemas import EmbeddingRequest, render_embeddings
from .settings import Settings
from .worker import ModelWorker


@dataclass(frozen=True)
class EmbeddingJob:
    """A request's model work: its tokenized inputs and how the answer is rendered. The worker calls
    it with the embedder on the model thread; it returns the response body."""

    encoded: list[Encoded]
    normalize: bool
    dimensions: int | None
    encoding_format: Literal["float", "base64"]
    model: str
    """The model id the response names."""

    def __call__(self, embedder: Embedder) -> bytes:
        tokens = sum(len(item.ids) for item in self.encoded)
        log.debug("batch started", extra={"inputs": len(self.encoded), "tokens": tokens})
        vectors = embedder.embed_encoded(self.encoded, normalize=self.normalize, dimensions=self.dimensions)
        return render_embeddings(vectors, self.encoded, self.encoding_format, self.model)


async def prepare_embeddings(
    request: EmbeddingRequest, embedder: Embedder, settings: Settings
) -> EmbeddingJob:
    """Check `request` against the model and the per-request limits and tokenize its texts (the one
    time they are tokenized). Raises `InvalidInput` or `TooLarge` naming the field and the limit."""
    info = embedder.info
    _check_input_count(request.input, settings)
    if request.dimensions is not None and request.dimensions not in info.matryoshka_dimensions:
        raise InvalidInput(
            f"dimensions {request.dimensions} is not allowed by the model; "
            f"use one of {describe_sizes(info.matryoshka_dimensions)}",
            code="dimensions_not_allowed",
            param="dimensions",
        )
    # Only the tokenizer is read, so a batch computing on the model thread does not hold this up.
    started = time.perf_counter()
    encoded = await asyncio.to_thread(embedder.tokenize, request.input, request.input_type)
    record_stage("tokenize_ms", time.perf_counter() - started)
    if not request.truncate:
        try:
            check_not_truncated(encoded, info.max_tokens)
        except InputTooLong as error:
            raise InvalidInput(
                f"input[{error.index}] has more tokens than the model's limit of {error.max_tokens}; "
                "shorten it or send truncate: true",
                code="input_too_long",
                param=f"input[{error.index}]",
            ) from error
    total = sum(len(item.ids) for item in encoded)
    if total > settings.max_tokens_per_request:
        raise TooLarge(
            f"input has {total} tokens, more than the limit of {settings.max_tokens_per_request} per "
            "request (--max-tokens-per-request); split the request",
            code="too_many_tokens",
            param="input",
        )
    return EmbeddingJob(
        encoded=encoded,
        normalize=request.normalize,
        dimensions=request.dimensions,
        encoding_format=request.encoding_format,
        model=settings.model,
    )


async def run_embeddings(job: EmbeddingJob, worker: ModelWorker, settings: Settings) -> bytes:
    """Queue `job` behind the one computing (`Overloaded` when too many wait) and return its body;
    a NaN or infinity from the model becomes `InvalidOutput`, never an answer."""
    if worker.pending > settings.max_queued_requests:
        raise Overloaded(
            f"{worker.pending - 1} requests are already waiting for the model (--max-queued-requests is "
            f"{settings.max_queued_requests}); retry after the one in flight",
            code="overloaded",
            headers={"Retry-After": "1"},
        )
    try:
        return await worker.run(job)
    except NonFiniteEmbedding as error:
        log.error("non-finite embedding", extra={"index": error.index, "reason": error.reason})
        raise InvalidOutput(
            f"the model produced an invalid embedding for input {error.index} ({error.reason}); "
            "nothing was returned",
            code="non_finite_embedding",
            param=f"input[{error.index}]",
        ) from error


def _check_input_count(texts: Sequence[str], settings: Settings) -> None:
    if len(texts) > settings.max_inputs:
        raise TooLarge(
            f"input has {len(texts)} items, more than the limit of {settings.max_inputs} per request "
            "(--max-inputs); split the request",
            code="too_many_inputs",
            param="input",
        )
