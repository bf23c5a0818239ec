"""The engine around the models: model info, tokens and truncation, batching, Matryoshka, the
NaN guard and the warm-up, on the tiny fixture checkpoints."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from akidb_inference import engine
from akidb_inference.engine import (
    CHARS_PER_TOKEN_GUESS,
    CUT_MARGIN_TOKENS,
    Embedder,
    Encoded,
    InputTooLong,
    NonFiniteEmbedding,
    Quantization,
    load_embedder,
)
from akidb_inference.pooling import pool_last_token, pool_mean
from akidb_inference.prompts import QWEN3_DEFAULT_TASK

from .conftest import AutoBackend, LoadFixtureEmbedder
from .fixtures import fixture_dir, load_reference

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
    ids = [item.ids for item in gemma.tokenize(["hello", LONG * 3], "document")]
    assert ids[0][0] == 2 and ids[0][-1] == 1  # <bos> ... <eos>
    assert len(ids[1]) == gemma.info.max_tokens and ids[1][0] == 2 and ids[1][-1] == 1
    qwen3 = fixture_embedder("qwen3-4bit")
    ids = [item.ids for item in qwen3.tokenize(["hello", LONG * 3], "query")]
    assert ids[0][-1] == 151643 and ids[1][-1] == 151643  # <|endoftext|>
    assert len(ids[1]) == qwen3.info.max_tokens


def test_input_too_long_names_the_input_and_its_tokens(fixture_embedder: LoadFixtureEmbedder) -> None:
    embedder = fixture_embedder("qwen3-f32")
    texts = ["short", LONG * 2, LONG * 3]
    with pytest.raises(InputTooLong) as raised:
        embedder.embed(texts, "document", truncate=False)
    assert (raised.value.index, raised.value.max_tokens) == (1, 512)
    result = embedder.embed(texts, "document")
    assert result.token_counts == [2, 512, 512]
    assert result.truncated == [False, True, True]


def test_tokenize_gives_exact_counts_and_marks_cut_inputs(fixture_embedder: LoadFixtureEmbedder) -> None:
    reference = load_reference("qwen3-f32")
    embedder = fixture_embedder("qwen3-f32")
    for input_type in ("query", "document"):
        entries = [entry for entry in reference.texts if entry.input_type == input_type]
        encoded = embedder.tokenize([entry.text for entry in entries], input_type)
        assert [len(item.ids) for item in encoded] == [entry.token_count for entry in entries]
        assert [item.truncated for item in encoded] == [
            entry.untruncated_token_count > reference.max_tokens for entry in entries
        ]


class RecordingTokenizer:
    """Wraps a `tokenizers.Tokenizer`, recording how many characters each call was given."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.characters: list[int] = []

    def encode(self, text: str, **options: Any) -> Any:
        self.characters.append(len(text))
        return self._tokenizer.encode(text, **options)

    def encode_batch(self, texts: list[str], **options: Any) -> Any:
        self.characters.extend(len(text) for text in texts)
        return self._tokenizer.encode_batch(texts, **options)


def tokenized_whole(embedder: Embedder, text: str) -> Encoded:
    """What `tokenize` must give for a document: the whole text tokenized, then cut."""
    ids = embedder._tokenizer.encode(embedder.info.prompts["document"] + text, add_special_tokens=False).ids
    room = embedder.info.max_tokens - len(embedder._prefix) - len(embedder._suffix)
    return Encoded(embedder._prefix + ids[:room] + embedder._suffix, truncated=len(ids) > room)


@pytest.mark.parametrize("fixture", ["qwen3-f32", "gemma3-f32"])
def test_a_huge_text_is_tokenized_only_as_far_as_the_cut(
    fixture: str, fixture_embedder: LoadFixtureEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = fixture_embedder(fixture)
    huge = (LONG + " ") * (4_000_000 // len(LONG))
    expected = tokenized_whole(embedder, huge[:200_000])  # far more than 512 tokens, cheap to tokenize
    recording = RecordingTokenizer(embedder._tokenizer)
    monkeypatch.setattr(embedder, "_tokenizer", recording)

    [encoded] = embedder.tokenize([huge], "document")

    assert len(huge) > 4_000_000 - len(LONG)
    assert encoded == expected and len(encoded.ids) == 512 and encoded.truncated
    # One call with at most (512 + CUT_MARGIN_TOKENS) * CHARS_PER_TOKEN_GUESS characters: 0.1 % of the text.
    [characters] = recording.characters
    assert characters <= (512 + CUT_MARGIN_TOKENS) * CHARS_PER_TOKEN_GUESS


@pytest.mark.parametrize("fixture", ["qwen3-f32", "gemma3-f32"])
def test_a_cut_text_tokenizes_as_the_whole_text_does(
    fixture: str, fixture_embedder: LoadFixtureEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = fixture_embedder(fixture)
    texts = [LONG * 3, "word " * 3000, " " * 5000 + LONG, "x" * 20_000, LONG.replace(" ", "") * 2, "short"]
    whole = [tokenized_whole(embedder, text) for text in texts]
    # One character per token at first: every long text is cut mid-word, most of them several times.
    monkeypatch.setattr(engine, "CHARS_PER_TOKEN_GUESS", 1)
    recording = RecordingTokenizer(embedder._tokenizer)
    monkeypatch.setattr(embedder, "_tokenizer", recording)

    assert embedder.tokenize(texts, "document") == whole
    assert len(recording.characters) > len(texts)  # the windows grew
    assert [item.truncated for item in whole] == [True] * 5 + [False]


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
    forward = AutoBackend.forward

    def recording(self: Any, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        shapes.append(input_ids.shape)
        return forward(self, input_ids, attention_mask)

    monkeypatch.setattr(AutoBackend, "forward", recording)
    texts = ["x " * n for n in (3, 40, 1, 20, 9, 2, 30)]
    result = embedder.embed(texts, "document")
    assert all(rows * width <= 64 or rows == 1 for rows, width in shapes)
    assert sum(rows for rows, _ in shapes) == len(texts) and len(shapes) > 2
    alone = np.concatenate(
        [fixture_embedder("qwen3-f32").embed([text], "document").vectors for text in texts]
    )
    assert (np.sum(result.vectors * alone, axis=1) >= 0.9999).all()


def test_a_backend_bucket_limit_pads_only_small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime on CUDA asks for buckets up to 1024 tokens (CUDA graphs); here on the CPU a backend
    asking for 256: batches within it come in the warmed power-of-two shapes, larger ones unpadded,
    and padding changes no vector."""
    shapes: list[tuple[int, int]] = []
    forward = AutoBackend.forward

    def recording(self: Any, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        shapes.append(input_ids.shape)
        return forward(self, input_ids, attention_mask)

    monkeypatch.setattr(AutoBackend, "bucket_tokens", property(lambda self: 256))
    bucketed = load_embedder(fixture_dir("qwen3-f32"), max_batch_tokens=4096)
    monkeypatch.setattr(AutoBackend, "forward", recording)
    bucketed.warm_up()
    warmed = set(bucketed.bucket_shapes())
    assert shapes[1:] and set(shapes[1:]) == warmed
    assert all(rows * width <= 256 for rows, width in warmed)
    assert max(width for _, width in warmed) == 256
    shapes.clear()
    texts = ["x " * n for n in (3, 5, 9)] + ["y " * 40] * 9
    vectors = bucketed.embed(texts, "document").vectors
    lengths = sorted(len(e.ids) for e in bucketed.tokenize(texts, "document"))
    assert shapes == [(9, lengths[-1]), (4, 16)], "the 9 long texts unpadded; the 3 short ones bucketed"
    monkeypatch.setattr(AutoBackend, "bucket_tokens", property(lambda self: 0))
    plain = load_embedder(fixture_dir("qwen3-f32"), max_batch_tokens=4096)
    assert not plain.bucket_shapes()
    np.testing.assert_allclose(vectors, plain.embed(texts, "document").vectors, atol=1e-5)


def test_a_batch_is_never_mostly_padding(
    fixture_embedder: LoadFixtureEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = fixture_embedder("qwen3-f32")
    rows: list[tuple[int, list[int]]] = []
    forward = AutoBackend.forward

    def recording(self: Any, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        rows.append((input_ids.shape[1], attention_mask.sum(axis=1).tolist()))
        return forward(self, input_ids, attention_mask)

    monkeypatch.setattr(AutoBackend, "forward", recording)
    texts = ["x " * n for n in (3, 40, 1, 20, 9, 2, 30, 15)]
    embedder.embed(texts, "document")
    assert sorted(n for _, lengths in rows for n in lengths) == sorted(
        len(e.ids) for e in embedder.tokenize(texts, "document")
    )
    for width, lengths in rows:
        assert all(2 * n > width for n in lengths), (width, lengths)
    assert len(rows) < len(texts)


def test_a_nan_in_the_model_output_is_reported_not_returned(
    fixture_embedder: LoadFixtureEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = fixture_embedder("gemma3-f32")
    texts = ["fine", "also fine but longer", "poisoned"]
    poisoned = embedder.tokenize(["poisoned"], "document")[0].ids
    forward = AutoBackend.forward

    def poisoning(self: Any, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        hidden = forward(self, input_ids, attention_mask)
        for row, ids in enumerate(input_ids):
            if list(ids[: len(poisoned)]) == poisoned:
                hidden[row, 1, 3] = np.nan
        return hidden

    monkeypatch.setattr(AutoBackend, "forward", poisoning)
    with pytest.raises(NonFiniteEmbedding) as raised:
        embedder.embed(texts, "document")
    assert raised.value.index == 2 and "NaN" in raised.value.reason


def test_warm_up_runs_a_forward_pass(
    fixture_embedder: LoadFixtureEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = fixture_embedder("gemma3-4bit")
    calls: list[tuple[int, int]] = []
    forward = AutoBackend.forward

    def counting(self: Any, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        calls.append(input_ids.shape)
        return forward(self, input_ids, attention_mask)

    monkeypatch.setattr(AutoBackend, "forward", counting)
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
