"""The MLX backend on an NVIDIA GPU (MLX's CUDA build), ONNX Runtime's CUDA graphs, and the CUDA
workaround on the CPU.

The `cuda` tests run only where MLX has CUDA or ONNX Runtime its CUDA provider: CI has no GPU, so they
run through the device tool (docs/inference.md, "GPU tests", records the command and the last result)
and are skipped elsewhere.
`test_single_group_workaround_keeps_fidelity` runs everywhere: it forces the workaround on the CPU.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from akidb_inference.backends import onnx_cuda_available
from akidb_inference.backends.mlx import loader
from akidb_inference.backends.onnx.cuda_graphs import GRAPH_TOKENS
from akidb_inference.engine import BackendOptions, Embedder, load_embedder

from .conftest import LoadFixtureEmbedder
from .fixtures import fixture_dir
from .test_models import MAX_ABS_DIFF, check_reference, check_reference_discriminates

MLX = BackendOptions(name="mlx")
FIXTURES = ["qwen3-f32", "qwen3-4bit", "gemma3-f32", "gemma3-4bit"]
cuda = pytest.mark.skipif(not mx.cuda.is_available(), reason="needs MLX's CUDA build and an NVIDIA GPU")
ONNX = BackendOptions(name="onnx")
onnx_cuda = pytest.mark.skipif(
    not onnx_cuda_available(), reason="needs onnxruntime-gpu (its CUDA provider) and an NVIDIA GPU"
)


def check_on_cuda(fixture: str, backend: BackendOptions, fixture_embedder: LoadFixtureEmbedder) -> Embedder:
    """The fixture on CUDA, warmed up (every bucket shape), against transformers alone, in one batch
    and in split batches (batch == single), never a NaN (`embed` raises on one)."""
    embedder = fixture_embedder(fixture, backend=backend)
    assert embedder.info.device.startswith("cuda:"), embedder.info.device
    embedder.warm_up()
    check_reference_discriminates(fixture)
    check_reference(fixture, embedder, fixture_embedder(fixture, 600, backend))
    return embedder


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("fixture", FIXTURES)
def test_fixture_matches_transformers_on_cuda(fixture: str, fixture_embedder: LoadFixtureEmbedder) -> None:
    """Reference match alone, in one batch and in split batches (batch == single), never a NaN
    (`embed` raises on one), with the shape buckets and their warm-up that CUDA serving uses."""
    embedder = check_on_cuda(fixture, MLX, fixture_embedder)
    assert embedder.bucket_shapes(), "shape buckets are on by default on CUDA"


@pytest.mark.cuda
@cuda
def test_unbucketed_batches_match_bucketed_on_cuda() -> None:
    texts = ["short", "a somewhat longer text about vectors " * 9, "x " * 70]
    plain = load_embedder(fixture_dir("qwen3-4bit"), backend=MLX, shape_buckets=False)
    bucketed = load_embedder(fixture_dir("qwen3-4bit"), backend=MLX)
    np.testing.assert_allclose(
        plain.embed(texts, "document").vectors, bucketed.embed(texts, "document").vectors, atol=MAX_ABS_DIFF
    )


@pytest.mark.cuda
@onnx_cuda
@pytest.mark.parametrize("fixture", ["qwen3-f32", "gemma3-f32"])
def test_onnx_cuda_graphs_match_transformers(fixture: str, fixture_embedder: LoadFixtureEmbedder) -> None:
    """ONNX Runtime on CUDA, small batches replayed as CUDA graphs: the reference match alone, in one
    batch and in split batches, after the warm-up that captures every graph."""
    embedder = check_on_cuda(fixture, ONNX, fixture_embedder)
    assert embedder._backend.bucket_tokens == GRAPH_TOKENS, "CUDA graphs are on"
    shapes = embedder.bucket_shapes()
    assert shapes and all(rows * width <= GRAPH_TOKENS for rows, width in shapes)


@pytest.mark.cuda
@onnx_cuda
def test_onnx_cuda_graph_replays_follow_new_inputs() -> None:
    """A replayed graph computes the inputs of its run, not of its capture: the same shapes with
    other texts, over and over, equal plain runs (no graphs) of the same texts."""
    graphs = load_embedder(fixture_dir("gemma3-f32"), backend=ONNX)
    plain = load_embedder(fixture_dir("gemma3-f32"), backend=ONNX, shape_buckets=False)
    graphs.warm_up()
    for round_ in range(3):
        for count in (1, 3, 8):
            texts = [f"text {round_}-{count}-{i}: " + "words about vectors " * (i % 4) for i in range(count)]
            np.testing.assert_allclose(
                graphs.embed(texts, "document").vectors,
                plain.embed(texts, "document").vectors,
                atol=MAX_ABS_DIFF,
            )


def test_single_group_workaround_keeps_fidelity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The layers whose input is one quantization group load dequantized (as on CUDA) and the 4-bit
    fixtures still match transformers; the wider layers and the embedding table stay quantized."""
    monkeypatch.setattr(loader, "single_group_matmul_is_wrong", lambda: True)
    for fixture in ("qwen3-4bit", "gemma3-4bit"):
        embedder = load_embedder(fixture_dir(fixture), backend=MLX)
        batched = load_embedder(fixture_dir(fixture), backend=MLX, max_batch_tokens=600)
        model = embedder._backend._model.model  # type: ignore[attr-defined]
        layer = model.layers[0]
        assert type(layer.mlp.up_proj) is nn.Linear  # input 64 wide: one group of 64
        assert isinstance(layer.mlp.down_proj, nn.QuantizedLinear)  # input 128 wide: two groups
        assert isinstance(model.embed_tokens, nn.QuantizedEmbedding)
        check_reference(fixture, embedder, batched)


def test_shape_buckets_change_no_vector() -> None:
    """The bucketing CUDA uses: every warmed shape stays within the token budget, and padded widths
    and rows change no vector (beyond TF32 rounding on CUDA: 2.5e-4 measured on an H200)."""
    texts = ["short", "a somewhat longer text about vectors " * 9, "x " * 70, "y " * 400] * 3
    plain = load_embedder(fixture_dir("gemma3-4bit"), backend=MLX, max_batch_tokens=600, shape_buckets=False)
    bucketed = load_embedder(
        fixture_dir("gemma3-4bit"), backend=MLX, max_batch_tokens=600, shape_buckets=True
    )
    shapes = bucketed.bucket_shapes()
    assert shapes and all(rows * width <= 600 for rows, width in shapes)
    assert sorted({width for _, width in shapes}) == [16, 32, 64, 128, 256, 512]
    bucketed.warm_up()
    for input_type in ("query", "document"):
        np.testing.assert_allclose(
            plain.embed(texts, input_type).vectors,
            bucketed.embed(texts, input_type).vectors,
            atol=MAX_ABS_DIFF,
        )
