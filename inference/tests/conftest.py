"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from akidb_inference.backends import chosen
from akidb_inference.backends.mlx import MLXBackend
from akidb_inference.backends.onnx import ONNXBackend
from akidb_inference.engine import BackendOptions, Embedder, load_embedder

from .fixtures import fixture_dir

LoadFixtureEmbedder = Callable[..., Embedder]

AutoBackend: type[MLXBackend | ONNXBackend] = MLXBackend if chosen(BackendOptions()) == "mlx" else ONNXBackend
"""The class the default backend setting ("auto") loads on this machine: tests that wrap a
backend's `forward` patch this one."""


@pytest.fixture(scope="session")
def fixture_embedder() -> LoadFixtureEmbedder:
    """`fixture_embedder(name, max_batch_tokens=16384, backend=BackendOptions())`: the engine on a test
    checkpoint (see tests/fixtures), loaded once per session and argument set."""
    loaded: dict[tuple[str, int, BackendOptions], Embedder] = {}

    def load(name: str, max_batch_tokens: int = 16384, backend: BackendOptions | None = None) -> Embedder:
        options = backend or BackendOptions()
        key = (name, max_batch_tokens, options)
        if key not in loaded:
            loaded[key] = load_embedder(fixture_dir(name), max_batch_tokens=max_batch_tokens, backend=options)
        return loaded[key]

    return load
