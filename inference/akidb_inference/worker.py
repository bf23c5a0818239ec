"""The model and the one thread that runs it.

The thread first fetches and loads the model and runs the warm-up pass, then computes one batch at a
time in submission order: the engine is not thread-safe, and MLX binds unevaluated arrays to the
thread that created them. The event loop only awaits, so /health answers while a batch computes.
Tokenization only reads the tokenizer, so it runs on other threads and does not wait for a batch.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import psutil

from .download import ModelSourceError
from .engine import BackendOptions, Device, Embedder, ModelLoadError, load_embedder
from .logs import log, record_stage

Status = Literal["loading", "ready", "failed"]
T = TypeVar("T")


@dataclass(frozen=True)
class LoadedModel:
    embedder: Embedder
    load_seconds: float
    """From the start of `load_embedder` to its return; the download, if any, is logged separately."""
    loaded_at: int
    """Unix time."""


class ModelWorker:
    def __init__(
        self,
        model_dir: Callable[[], Path],
        *,
        device: Device,
        max_batch_tokens: int,
        backend: BackendOptions | None = None,
    ) -> None:
        """`model_dir` finds (downloading if need be) the checkpoint; it runs on the worker thread."""
        self._model_dir = model_dir
        self._device: Device = device
        self._backend = backend or BackendOptions()
        self._max_batch_tokens = max_batch_tokens
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._running = 0
        self.pending = 0
        """`run` jobs submitted and not finished: the one computing and those waiting for it."""
        self.status: Status = "loading"
        self.reason = "the model is loading"
        """Why the model is not ready; the load error once `status` is "failed"."""
        self.model: LoadedModel | None = None

    @property
    def busy(self) -> bool:
        """Whether the thread is loading or computing right now."""
        return self._running > 0

    def start(self) -> None:
        self._submit(self._load)

    async def run(self, job: Callable[[Embedder], T]) -> T:
        """Run `job` on the worker thread after the jobs before it. The caller checks `model` first."""
        model = self.model
        assert model is not None, "run() before the model is ready"
        # The copied context carries the request id into the worker thread's log lines, and its
        # stage times out of it (the same dict).
        context = contextvars.copy_context()
        submitted = time.perf_counter()

        def timed() -> T:
            started = time.perf_counter()
            record_stage("queue_ms", started - submitted)
            try:
                return job(model.embedder)
            finally:
                record_stage("model_ms", time.perf_counter() - started)

        self.pending += 1
        try:
            return await asyncio.wrap_future(self._submit(lambda: context.run(timed)))
        finally:
            self.pending -= 1

    def close(self) -> None:
        """Drop queued jobs; a job already running finishes on its own."""
        self._thread.shutdown(wait=False, cancel_futures=True)

    def _submit(self, job: Callable[[], T]) -> Future[T]:
        return self._thread.submit(self._counted, job)

    def _counted(self, job: Callable[[], T]) -> T:
        self._running += 1
        try:
            return job()
        finally:
            self._running -= 1

    def _load(self) -> None:
        try:
            directory = self._model_dir()
            started = time.perf_counter()
            embedder = load_embedder(
                directory, device=self._device, max_batch_tokens=self._max_batch_tokens, backend=self._backend
            )
            load_seconds = time.perf_counter() - started
            log.info(
                "model loaded", extra={"directory": str(directory), "load_seconds": round(load_seconds, 3)}
            )
            warm_up_seconds = embedder.warm_up()
        except Exception as error:  # any load failure becomes a 503 with its reason, not a dead thread
            self.reason = f"the model failed to load: {error}"
            self.status = "failed"
            # A bad checkpoint or source is the user's to fix; anything else is a bug worth a traceback.
            expected = isinstance(error, ModelLoadError | ModelSourceError)
            log.error(
                "model failed to load", extra={"reason": str(error)}, exc_info=None if expected else error
            )
            return
        self.model = LoadedModel(embedder, load_seconds, int(time.time()))
        self.status = "ready"
        self.reason = ""
        log.info(
            "model ready",
            extra={
                "architecture": embedder.info.architecture,
                "backend": embedder.info.backend,
                "device": embedder.info.device,
                "dimension": embedder.info.dimension,
                "load_seconds": round(load_seconds, 3),
                "warm_up_seconds": round(warm_up_seconds, 3),
                "resident_memory_bytes": resident_memory_bytes(),
            },
        )


def resident_memory_bytes() -> int:
    return int(psutil.Process().memory_info().rss)
