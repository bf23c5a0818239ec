"""The engine around the models: model info, tokens and truncation, batching, Matryoshka, the
NaN guard and the warm-up, on the tiny fixture checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from akidb_inference.backends.mlx import MLXBackend
from akidb_inference.engine import InputTooLong, NonFiniteEmbedding, Quantization
from akidb_inference.pooling import pool_last_token, pool_mean
from akidb_inference.prompts import QWEN3_DEFAULT_TASK

from .conftest import LoadFixtureEmbedder
from .fixtures import load_reference

LONG = load_reference("qwen3-f32").texts[-1].text


def test_model_info_describes_each_checkpoint(fixture_embedder: LoadFixtureEmbedder) -> None:
    qwen3 = fixture_embedder("qwen3-f32").info
    assert (qwen3.architecture, qwen3.dimension, qwen3.pooling, qwen3.dtype) == (
        "qwen3",
        64,
        "last_token",
        "float32",
    )
    assert qwen3.matryoshka_dimensions == tuple(range(32, 65))
    assert qwen3.prompts == {"query": f"Instruct: {QWEN3_DEFAULT_TASK}\nQuery:", "document": ""}
    assert qwen3.quantization is None and qwen3.max_tokens == 512

    gemma = fixture_embedder("gemma3-4bit").info
    assert (gemma.architecture, gemma.dimension, gemma.pooling) == ("gemma3_text", 64, "mean")
    assert gemma.matryoshka_dimensions == (64,)
    assert gemma.prompts == {"query": "task: search result | query: ", "document": "title: none | text: "}
    assert gemma.quantization == Quantization(bits=4, group_size=64, mode="affine")


def test_special_tokens_are_added_and_kept_by_truncation(fixture_embedder: LoadFixtureEmbedder) -> None:
    gemma = fixture_embedder("gemma3-f32")
    ids = gemma.encode(["hello", LONG * 3], "document", truncate=True)
    assert ids[0][0] == 2 and ids[0][-1] == 1  # <bos> ... <eos>
    assert len(ids[1]) == gemma.info.max_tokens and ids[1][0] == 2 and ids[1][-1] == 1
    qwen3 = fixture_embedder("qwen3-4bit")
    ids = qwen3.encode(["hello", LONG * 3], "query", truncate=True)
    assert ids[0][-1] == 151643 and ids[1][-1] == 151643  # <|endoftext|>
    assert len(ids[1]) == qwen3.info.max_tokens


def test_input_too_long_names_the_input_and_its_tokens(fixture_embedder: LoadFixtureEmbedder) -> None:
    embedder = fixture_embedder("qwen3-f32")
    texts = ["short", LONG * 2, LONG * 3]
    with pytest.raises(InputTooLong) as raised:
        embedder.embed(texts, "document", truncate=False)
    assert raised.value.index == 1
    assert raised.value.tokens == embedder.count_tokens(texts, "document")[1] > 512
    assert raised.value.max_tokens == 512
    assert embedder.embed(texts, "document").token_counts == [2, 512, 512]


def test_matryoshka_keeps_leading_components(fixture_embedder: LoadFixtureEmbedder) -> None:
    embedder = fixture_embedder("qwen3-f32")
    texts = ["first text", "a second, longer text", "3"]
    raw = embedder.embed(texts, "query", normalize=False).vectors
    truncated = embedder.embed(texts, "query", dimensions=32).vectors
    assert truncated.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(truncated, axis=1), 1, atol=1e-6)
    expected = raw[:, :32] / np.linalg.norm(raw[:, :32], axis=1, keepdims=True)
    np.testing.assert_allclose(truncated, expected, atol=1e-6)
    np.testing.assert_array_equal(
        embedder.embed(texts, "query", normalize=False, dimensions=40).vectors, raw[:, :40]
    )
    assert abs(float(np.linalg.norm(raw[0])) - 1) > 1e-3  # normalize=False really is raw


def test_batches_respect_the_token_budget_and_keep_input_order(
    fixture_embedder: LoadFixtureEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = fixture_embedder("qwen3-f32", max_batch_tokens=64)
    shapes: list[tuple[int, int]] = []
    forward = MLXBackend.forward

    def recording(self: MLXBackend, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        shapes.append(input_ids.shape)
        return forward(self, input_ids, attention_mask)

    monkeypatch.setattr(MLXBackend, "forward", recording)
    texts = ["x " * n for n in (3, 40, 1, 20, 9, 2, 30)]
    result = embedder.embed(texts, "document")
    assert all(rows * width <= 64 or rows == 1 for rows, width in shapes)
    assert sum(rows for rows, _ in shapes) == len(texts) and len(shapes) > 2
    alone = np.concatenate(
        [fixture_embedder("qwen3-f32").embed([text], "document").vectors for text in texts]
    )
    assert (np.sum(result.vectors * alone, axis=1) >= 0.9999).all()


def test_a_nan_in_the_model_output_is_reported_not_returned(
    fixture_embedder: LoadFixtureEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = fixture_embedder("gemma3-f32")
    texts = ["fine", "also fine but longer", "poisoned"]
    poisoned = embedder.encode(["poisoned"], "document", truncate=True)[0]
    forward = MLXBackend.forward

    def poisoning(self: MLXBackend, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        hidden = forward(self, input_ids, attention_mask)
        for row, ids in enumerate(input_ids):
            if list(ids[: len(poisoned)]) == poisoned:
                hidden[row, 1, 3] = np.nan
        return hidden

    monkeypatch.setattr(MLXBackend, "forward", poisoning)
    with pytest.raises(NonFiniteEmbedding) as raised:
        embedder.embed(texts, "document")
    assert raised.value.index == 2 and "NaN" in raised.value.reason


def test_warm_up_runs_a_forward_pass(
    fixture_embedder: LoadFixtureEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = fixture_embedder("gemma3-4bit")
    calls: list[tuple[int, int]] = []
    forward = MLXBackend.forward

    def counting(self: MLXBackend, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        calls.append(input_ids.shape)
        return forward(self, input_ids, attention_mask)

    monkeypatch.setattr(MLXBackend, "forward", counting)
    assert embedder.warm_up() > 0
    assert calls == [(1, 1)]


def test_pooling_reads_real_tokens_on_either_padding_side() -> None:
    hidden = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    right = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])
    left = np.array([[0, 1, 1, 1], [0, 0, 1, 1]])
    np.testing.assert_array_equal(pool_last_token(hidden, right), hidden[[0, 1], [2, 1]])
    np.testing.assert_array_equal(pool_last_token(hidden, left), hidden[[0, 1], [3, 3]])
    np.testing.assert_allclose(pool_mean(hidden, right), [hidden[0, :3].mean(0), hidden[1, :2].mean(0)])
    np.testing.assert_allclose(pool_mean(hidden, left), [hidden[0, 1:].mean(0), hidden[1, 2:].mean(0)])
