"""The HTTP API of the inference process: /health, /v1/models, /v1/embeddings.

Handlers are plain functions that get the settings and the `ModelWorker` passed in (FastAPI
dependencies on the app's state); they validate, hand the model work to the worker through
`infer`, and never compute on the event loop. Errors map to statuses in `errors.ERROR_TABLE`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any, Literal, cast

from fastapi import Depends, FastAPI, Request
from starlette.responses import JSONResponse, Response

from .architectures import SizeRange, compact_sizes
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
from .infer import prepare_embeddings, run_embeddings
from .middleware import RequestContext
from .schemas import (
    EmbeddingRequest,
    ErrorResponse,
    InferenceEmbeddingResponse,
    InferenceHealthNotReady,
    InferenceHealthReady,
    InferenceModel,
    InferenceModelList,
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
    app.state.settings = settings
    app.state.worker = worker
    app.add_middleware(RequestContext, token=settings.token, max_request_bytes=settings.max_request_bytes)
    add_error_handlers(app)
    add = app.add_api_route
    add(
        "/health",
        health,
        methods=["GET"],
        response_model=InferenceHealthReady,
        responses={503: {"model": InferenceHealthNotReady, "description": "Loading or failed."}},
    )
    add("/v1/models", list_models, methods=["GET"], responses=_documented(Unauthorized, ModelUnavailable))
    add(
        "/v1/embeddings",
        create_embeddings,
        methods=["POST"],
        response_model=InferenceEmbeddingResponse,
        responses=_documented(
            InvalidInput, Unauthorized, TooLarge, WrongShape, Overloaded, InvalidOutput, ModelUnavailable
        ),
    )
    return app


def _settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def _worker(request: Request) -> ModelWorker:
    return cast(ModelWorker, request.app.state.worker)


SettingsDep = Annotated[Settings, Depends(_settings)]
WorkerDep = Annotated[ModelWorker, Depends(_worker)]


def _documented(*errors: type[ApiError]) -> dict[int | str, dict[str, Any]]:
    return {
        ERROR_TABLE[error][0]: {"model": ErrorResponse, "description": (error.__doc__ or "").split("\n")[0]}
        for error in errors
    }


async def health(worker: WorkerDep, settings: SettingsDep) -> Response:
    model = worker.model
    if model is None:
        status: Literal["loading", "failed"] = "failed" if worker.status == "failed" else "loading"
        not_ready = InferenceHealthNotReady(status=status, reason=worker.reason)
        return JSONResponse(not_ready.model_dump(), status_code=503)
    return JSONResponse(InferenceHealthReady(model=model_card(model, settings)).model_dump())


async def list_models(worker: WorkerDep, settings: SettingsDep) -> InferenceModelList:
    return InferenceModelList(data=[model_card(ready_model(worker), settings)])


async def create_embeddings(request: EmbeddingRequest, worker: WorkerDep, settings: SettingsDep) -> Response:
    job = await prepare_embeddings(request, ready_model(worker).embedder, settings)
    return Response(await run_embeddings(job, worker, settings), media_type="application/json")


def ready_model(worker: ModelWorker) -> LoadedModel:
    """The loaded model; `ModelUnavailable` (503) with the reason while it loads or after it failed."""
    model = worker.model
    if model is None:
        code = "model_failed" if worker.status == "failed" else "model_loading"
        raise ModelUnavailable(worker.reason, code=code)
    return model


def model_card(model: LoadedModel, settings: Settings) -> InferenceModel:
    info = model.embedder.info
    sizes = compact_sizes(info.matryoshka_dimensions)
    return InferenceModel.model_validate(
        {
            "id": settings.model,
            "created": model.loaded_at,
            "architecture": info.architecture,
            "dimension": info.dimension,
            "matryoshka_dimensions": asdict(sizes) if isinstance(sizes, SizeRange) else sizes,
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
