"""The HTTP API of the inference process: /health, /v1/models, /v1/embeddings, /tokenize.

Handlers validate, then hand the model work to the `ModelWorker`; they never compute on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any, Literal

from fastapi import FastAPI
from starlette.responses import JSONResponse, Response

from .architectures import SizeRange, compact_sizes, describe_sizes
from .engine import Embedder, InputTooLong, InputType, NonFiniteEmbedding, check_not_truncated
from .errors import (
    ERROR_TABLE,
    ApiError,
    InvalidInput,
    InvalidOutput,
    ModelUnavailable,
    Overloaded,
    TooLarge,
    Unauthorized,
    WrongShape,
    add_error_handlers,
)
from .logs import log
from .middleware import RequestContext
from .schemas import (
    EmbeddingRequest,
    ErrorResponse,
    InferenceEmbeddingResponse,
    InferenceHealthNotReady,
    InferenceHealthReady,
    InferenceModel,
    InferenceModelList,
    TokenCount,
    TokenizeRequest,
    TokenizeResponse,
    render_embeddings,
)
from .settings import Settings
from .worker import LoadedModel, ModelWorker, resident_memory_bytes


def create_app(settings: Settings, worker: ModelWorker) -> FastAPI:
    """The app; its lifespan starts loading the model on `worker` and drops queued work at shutdown."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker.start()
        yield
        worker.close()

    app = FastAPI(
        title="AkiDB inference",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(RequestContext, token=settings.token, max_request_bytes=settings.max_request_bytes)
    add_error_handlers(app)

    def ready_model() -> LoadedModel:
        model = worker.model
        if model is None:
            code = "model_failed" if worker.status == "failed" else "model_loading"
            raise ModelUnavailable(worker.reason, code=code)
        return model

    def model_card(model: LoadedModel) -> InferenceModel:
        info = model.embedder.info
        return InferenceModel.model_validate(
            {
                "id": settings.model,
                "created": model.loaded_at,
                "architecture": info.architecture,
                "dimension": info.dimension,
                "matryoshka_dimensions": _as_json(compact_sizes(info.matryoshka_dimensions)),
                "max_tokens": info.max_tokens,
                "pooling": info.pooling,
                "prompts": dict(info.prompts),
                "quantization": None if info.quantization is None else asdict(info.quantization),
                "dtype": info.dtype,
                "backend": info.backend,
                "device": info.device,
                "load_seconds": round(model.load_seconds, 3),
                "resident_memory_bytes": resident_memory_bytes(),
            }
        )

    def check_input_count(texts: Sequence[str]) -> None:
        if len(texts) > settings.max_inputs:
            raise TooLarge(
                f"input has {len(texts)} items, more than the limit of {settings.max_inputs} per request "
                "(--max-inputs); split the request",
                code="too_many_inputs",
                param="input",
            )

    async def count_tokens(embedder: Embedder, texts: Sequence[str], input_type: InputType) -> list[int]:
        # Only the tokenizer is read, so a batch computing on the worker does not hold this up.
        return await asyncio.to_thread(embedder.count_tokens, texts, input_type)

    @app.get(
        "/health",
        response_model=InferenceHealthReady,
        responses={503: {"model": InferenceHealthNotReady, "description": "Loading or failed."}},
    )
    async def health() -> Response:
        model = worker.model
        if model is None:
            status: Literal["loading", "failed"] = "failed" if worker.status == "failed" else "loading"
            not_ready = InferenceHealthNotReady(status=status, reason=worker.reason)
            return JSONResponse(not_ready.model_dump(), status_code=503)
        return JSONResponse(InferenceHealthReady(model=model_card(model)).model_dump())

    @app.get("/v1/models", responses=_documented(Unauthorized, ModelUnavailable))
    async def list_models() -> InferenceModelList:
        return InferenceModelList(data=[model_card(ready_model())])

    @app.post(
        "/v1/embeddings",
        response_model=InferenceEmbeddingResponse,
        responses=_documented(
            InvalidInput, Unauthorized, TooLarge, WrongShape, Overloaded, InvalidOutput, ModelUnavailable
        ),
    )
    async def create_embeddings(request: EmbeddingRequest) -> Response:
        model = ready_model()
        info = model.embedder.info
        texts = request.input
        check_input_count(texts)
        if request.dimensions is not None and request.dimensions not in info.matryoshka_dimensions:
            raise InvalidInput(
                f"dimensions {request.dimensions} is not allowed by the model; "
                f"use one of {describe_sizes(info.matryoshka_dimensions)}",
                code="dimensions_not_allowed",
                param="dimensions",
            )
        # Only the tokenizer is read, so a batch computing on the worker does not hold this up.
        encoded = await asyncio.to_thread(model.embedder.tokenize, texts, request.input_type)
        if not request.truncate:
            try:
                check_not_truncated(encoded, info.max_tokens)
            except InputTooLong as error:
                raise input_too_long(error) from error
        total = sum(len(item.ids) for item in encoded)
        if total > settings.max_tokens_per_request:
            raise TooLarge(
                f"input has {total} tokens, more than the limit of {settings.max_tokens_per_request} per "
                "request (--max-tokens-per-request); split the request",
                code="too_many_tokens",
                param="input",
            )

        def embed(embedder: Embedder) -> bytes:
            log.debug("batch started", extra={"inputs": len(texts), "tokens": total})
            vectors = embedder.embed_encoded(
                encoded, normalize=request.normalize, dimensions=request.dimensions
            )
            return render_embeddings(vectors, encoded, request.encoding_format, settings.model)

        if worker.pending > settings.max_queued_requests:
            raise Overloaded(
                f"{worker.pending - 1} requests are already waiting for the model (--max-queued-requests is "
                f"{settings.max_queued_requests}); retry after the one in flight",
                code="overloaded",
                headers={"Retry-After": "1"},
            )
        try:
            body = await worker.run(embed)
        except NonFiniteEmbedding as error:
            log.error("non-finite embedding", extra={"index": error.index, "reason": error.reason})
            raise InvalidOutput(
                f"the model produced an invalid embedding for input {error.index} ({error.reason}); "
                "nothing was returned",
                code="non_finite_embedding",
                param=f"input[{error.index}]",
            ) from error
        return Response(body, media_type="application/json")

    @app.post(
        "/tokenize",
        responses=_documented(InvalidInput, Unauthorized, TooLarge, WrongShape, ModelUnavailable),
    )
    async def tokenize(request: TokenizeRequest) -> TokenizeResponse:
        model = ready_model()
        check_input_count(request.input)
        counts = await count_tokens(model.embedder, request.input, request.input_type)
        return TokenizeResponse(
            data=[TokenCount(index=index, tokens=tokens) for index, tokens in enumerate(counts)],
            max_tokens=model.embedder.info.max_tokens,
        )

    return app


def input_too_long(error: InputTooLong) -> InvalidInput:
    return InvalidInput(
        f"input[{error.index}] has more tokens than the model's limit of {error.max_tokens}; "
        "shorten it or send truncate: true",
        code="input_too_long",
        param=f"input[{error.index}]",
    )


def _documented(*errors: type[ApiError]) -> dict[int | str, dict[str, Any]]:
    return {
        ERROR_TABLE[error][0]: {"model": ErrorResponse, "description": (error.__doc__ or "").split("\n")[0]}
        for error in errors
    }


def _as_json(sizes: list[int] | SizeRange) -> list[int] | dict[str, int]:
    return asdict(sizes) if isinstance(sizes, SizeRange) else sizes
