"""The app in-process on a real test checkpoint, behind FastAPI's TestClient (no socket)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from akidb_inference.app import create_app
from akidb_inference.settings import Settings
from akidb_inference.worker import ModelWorker

TOKEN = "in-process-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMITS = {"max_inputs": 8, "max_tokens_per_request": 700, "max_request_bytes": 20_000}
"""Small limits so that a test can cross them (the fixtures' max_tokens is 512)."""


def make_app(model_dir: Callable[[], Path]) -> FastAPI:
    """The app that loads the checkpoint `model_dir` returns once its lifespan starts."""
    settings = Settings(
        model="test-model",
        token=TOKEN,
        max_inputs=LIMITS["max_inputs"],
        max_tokens_per_request=LIMITS["max_tokens_per_request"],
        max_request_bytes=LIMITS["max_request_bytes"],
    )
    return create_app(settings, ModelWorker(model_dir, device="cpu", max_batch_tokens=4096))


def serve(model_dir: Callable[[], Path]) -> TestClient:
    """A client of `make_app(model_dir)`; entering it starts the load."""
    return TestClient(make_app(model_dir))


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
