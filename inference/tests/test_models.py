"""The MLX model files: one shared runner, then a few lines per architecture."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import mlx.core as mx
import numpy as np
import pytest

from akidb_inference.backends import onnx_cuda_available
from akidb_inference.backends.mlx.models import bert, gemma3_text, qwen3
from akidb_inference.engine import BackendOptions, Embedder
from akidb_inference.pooling import POOLING

from .conftest import LoadFixtureEmbedder
from .fixtures import load_reference

MLX = BackendOptions(name="mlx")
MIN_COSINE = 0.9999
# Observed differences are ~2e-7; a radius off by one at EmbeddingGemma's real window moves
# components by ~1e-4 while the cosine stays above MIN_COSINE.
MAX_ABS_DIFF = 1e-5
MAX_HIDDEN_DIFF = MAX_ABS_DIFF
"""The same text's raw (unnormalised) hidden states and projections alone and in a padded batch."""
if mx.cuda.is_available() or onnx_cuda_available():
    # Float32 matmuls on CUDA run on TF32 (10-bit mantissa), in MLX's CUDA build and by default in
    # ONNX Runtime's CUDA provider (`use_tf32`): 4-bit fixtures measured up to 5.4e-4 on an H200
    # (docs/inference.md, "GPU tests"); the cosine bound stays, and the CPU
    # run (CI) keeps catching an off-by-one window radius. Raw hidden states (|h| up to ~1.5 in
    # the fixtures) measured up to 2.6e-3 between a padded batch and the text alone.
    MAX_ABS_DIFF = 2e-3
    MAX_HIDDEN_DIFF = 5e-3


def check_shapes_and_padding(module: ModuleType, config: dict[str, Any], pooling: str) -> None:
    """Output shapes and dtypes; a text's hidden states and pooled vector are the same alone, in a
    right-padded batch and in a left-padded one."""
    model = module.Model(module.ModelArgs.from_dict(config))
    mx.eval(model.parameters())
    rng = np.random.default_rng(0)
    ids = rng.integers(0, config["vocab_size"], size=(3, 11), dtype=np.int32)
    lengths = [11, 7, 4]
    right = np.array([[1] * n + [0] * (11 - n) for n in lengths], dtype=np.int32)
    left = right[:, ::-1].copy()
    left_ids = np.stack([np.roll(row, 11 - n) for row, n in zip(ids, lengths, strict=True)])

    hidden = np.array(model(mx.array(ids), mx.array(right)))
    assert hidden.shape == (3, 11, config["hidden_size"]) and hidden.dtype == np.float32
    projected = np.array(model.project(mx.array(POOLING[pooling](hidden, right))))
    assert projected.shape == (3, model.dimension) and projected.dtype == np.float32
    hidden_left = np.array(model(mx.array(left_ids), mx.array(left)))
    projected_left = np.array(model.project(mx.array(POOLING[pooling](hidden_left, left))))

    for row, n in enumerate(lengths):
        alone = np.array(model(mx.array(ids[row : row + 1, :n]), mx.array(np.ones((1, n), np.int32))))
        np.testing.assert_allclose(hidden[row, :n], alone[0], atol=MAX_HIDDEN_DIFF)
        np.testing.assert_allclose(hidden_left[row, 11 - n :], alone[0], atol=MAX_HIDDEN_DIFF)
        vector = np.array(model.project(mx.array(POOLING[pooling](alone, np.ones((1, n), np.int32)))))[0]
        np.testing.assert_allclose(projected[row], vector, atol=MAX_HIDDEN_DIFF)
        np.testing.assert_allclose(projected_left[row], vector, atol=MAX_HIDDEN_DIFF)


def check_reference(fixture: str, embedder: Embedder, batched: Embedder) -> None:
    """Every reference text, as a query or a document, alone and inside batches (`batched` has a
    small token budget, so texts are split over several padded batches), matches transformers."""
    reference = load_reference(fixture)
    assert embedder.info.architecture == reference.model_type
    assert embedder.info.max_tokens == reference.max_tokens
    for input_type in ("query", "document"):
        entries = [entry for entry in reference.texts if entry.input_type == input_type]
        texts = [entry.text for entry in entries]
        encoded = embedder.tokenize(texts, input_type)
        assert [len(item.ids) for item in encoded] == [entry.token_count for entry in entries]
        assert [item.truncated for item in encoded] == [
            entry.untruncated_token_count > reference.max_tokens for entry in entries
        ]
        runs = {
            "one batch": embedder.embed(texts, input_type),
            "split batches": batched.embed(texts, input_type),
        }
        for index, text in enumerate(texts):
            runs[f"alone {index}"] = embedder.embed([text], input_type)
        for run, result in runs.items():
            assert result.vectors.dtype == np.float32
            rows = [int(run.split()[1])] if run.startswith("alone") else range(len(entries))
            for vector, row in zip(result.vectors, rows, strict=True):
                entry = entries[row]
                expected = np.array(entry.embedding, dtype=np.float32)
                where = f"{fixture} {input_type} {run} {entry.text[:40]!r}"
                assert float(vector @ expected) >= MIN_COSINE, where
                assert float(np.abs(vector - expected).max()) <= MAX_ABS_DIFF, where
            counts = [entries[row].token_count for row in rows]
            assert result.token_counts == counts, run


def check_reference_discriminates(fixture: str) -> None:
    """The random weights give different texts clearly different vectors (else the reference
    comparison could not catch a broken model); the long text and its truncated extension may
    legitimately be close."""
    vectors = np.array([entry.embedding for entry in load_reference(fixture).texts[:-2]])
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, 0)
    assert similarity.max() < 0.99


QWEN3_TINY = {
    "model_type": "qwen3",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "intermediate_size": 96,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 24,
    "rms_norm_eps": 1e-6,
    "vocab_size": 500,
    "rope_theta": 10000.0,
    "max_position_embeddings": 128,
    "unknown_key_ignored": True,
}


def test_qwen3_shapes_and_padding() -> None:
    check_shapes_and_padding(qwen3, QWEN3_TINY, "last_token")


@pytest.mark.parametrize("fixture", ["qwen3-f32", "qwen3-4bit"])
def test_qwen3_matches_transformers(fixture: str, fixture_embedder: LoadFixtureEmbedder) -> None:
    check_reference_discriminates(fixture)
    check_reference(fixture, fixture_embedder(fixture, backend=MLX), fixture_embedder(fixture, 600, MLX))


GEMMA3_TINY = {
    "model_type": "gemma3_text",
    "hidden_size": 64,
    "num_hidden_layers": 3,
    "intermediate_size": 96,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "rms_norm_eps": 1e-6,
    "vocab_size": 500,
    "query_pre_attn_scalar": 32,
    "sliding_window": 6,
    "sliding_window_pattern": 2,
    "rope_theta": 1e6,
    "max_position_embeddings": 128,
    "use_bidirectional_attention": True,
}


def test_gemma3_text_shapes_and_padding() -> None:
    check_shapes_and_padding(gemma3_text, GEMMA3_TINY, "mean")


@pytest.mark.parametrize("fixture", ["gemma3-f32", "gemma3-4bit"])
def test_gemma3_text_matches_transformers(fixture: str, fixture_embedder: LoadFixtureEmbedder) -> None:
    check_reference_discriminates(fixture)
    check_reference(fixture, fixture_embedder(fixture, backend=MLX), fixture_embedder(fixture, 600, MLX))


BERT_TINY = {
    "model_type": "bert",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "intermediate_size": 96,
    "num_attention_heads": 4,
    "vocab_size": 500,
    "max_position_embeddings": 64,
    "layer_norm_eps": 1e-12,
}


def test_bert_shapes_and_padding() -> None:
    check_shapes_and_padding(bert, BERT_TINY, "mean")


@pytest.mark.parametrize("fixture", ["bert-f32", "bert-4bit"])
def test_bert_matches_transformers(fixture: str, fixture_embedder: LoadFixtureEmbedder) -> None:
    check_reference_discriminates(fixture)
    check_reference(fixture, fixture_embedder(fixture, backend=MLX), fixture_embedder(fixture, 600, MLX))
