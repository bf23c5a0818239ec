"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from akidb_inference.engine import Embedder, load_embedder

from .fixtures import fixture_dir

LoadFixtureEmbedder = Callable[..., Embedder]


@pytest.fixture(scope="session")
def fixture_embedder() -> LoadFixtureEmbedder:
    """`fixture_embedder(name, max_batch_tokens=16384)`: the engine on a test checkpoint (see
    tests/fixtures), loaded once per session and argument set."""
    loaded: dict[tuple[str, int], Embedder] = {}

    def load(name: str, max_batch_tokens: int = 16384) -> Embedder:
        key = (name, max_batch_tokens)
        if key not in loaded:
            loaded[key] = load_embedder(fixture_dir(name), max_batch_tokens=max_batch_tokens)
        return loaded[key]

    return load
