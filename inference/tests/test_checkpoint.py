"""Reading checkpoints: layouts and key names real checkpoints use, and load errors that name
the file, field or model_type at fault."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from tokenizers import Tokenizer

from akidb_inference.architectures import ARCHITECTURES
from akidb_inference.backends.mlx import gpu_available, select_device
from akidb_inference.backends.mlx import models as mlx_models
from akidb_inference.backends.mlx.loader import load_model, read_weights
from akidb_inference.backends.mlx.models import gemma3_text, qwen3
from akidb_inference.backends.onnx import models as onnx_models
from akidb_inference.backends.onnx.weights import read_weights as read_onnx_weights
from akidb_inference.checkpoint import read_checkpoint
from akidb_inference.engine import BackendOptions, ModelLoadError, load_embedder
from akidb_inference.model_args import gemma3_text as gemma3_args
from akidb_inference.model_args import qwen3 as qwen3_args

from .fixtures import fixture_dir, load_reference
from .test_models import GEMMA3_TINY, QWEN3_TINY


def linked_copy(name: str, destination: Path) -> Path:
    """A fixture checkpoint whose files are symlinks; `rewrite` replaces one without touching the
    original."""
    shutil.copytree(fixture_dir(name), destination, copy_function=os.symlink)
    return destination


def rewrite(path: Path, content: dict[str, Any] | list[Any]) -> None:
    path.unlink(missing_ok=True)
    path.write_text(json.dumps(content))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_qwen3_sanitize_accepts_keys_with_and_without_the_model_prefix() -> None:
    model = qwen3.Model(qwen3_args.ModelArgs.from_dict(QWEN3_TINY))
    bare = {
        "embed_tokens.weight": mx.zeros(1),
        "layers.0.mlp.up_proj.weight": mx.zeros(1),
        "norm.weight": mx.zeros(1),
    }
    prefixed = {f"model.{key}": value for key, value in bare.items()}
    extras = {"lm_head.weight": mx.zeros(1), "model.layers.0.self_attn.rotary_emb.inv_freq": mx.zeros(1)}
    assert set(model.sanitize(bare)) == set(prefixed)
    assert set(model.sanitize(prefixed | extras)) == set(prefixed)


def test_gemma3_sanitize_names_the_dense_head_from_either_layout() -> None:
    model = gemma3_text.Model(gemma3_args.ModelArgs.from_dict(GEMMA3_TINY))
    sentence_transformers = {
        "norm.weight": mx.zeros(1),
        "3_Dense.linear.weight": mx.full((1,), 3.0),
        "2_Dense.linear.weight": mx.full((1,), 2.0),
    }
    sanitized = model.sanitize(sentence_transformers)
    assert set(sanitized) == {"model.norm.weight", "dense.0.weight", "dense.1.weight"}
    assert sanitized["dense.0.weight"].item() == 2.0 and sanitized["dense.1.weight"].item() == 3.0
    # An MLX conversion's own (possibly quantized) head wins over leftover module files.
    mlx_layout = {
        "model.norm.weight": mx.zeros(1),
        "dense.0.scales": mx.zeros(1),
        "dense.0.weight": mx.zeros(1),
    }
    assert set(model.sanitize(mlx_layout | sentence_transformers)) == set(mlx_layout)


@pytest.mark.parametrize("fixture", ["bert-f32", "gemma3-f32", "qwen3-f32"])
def test_both_backends_name_the_weights_alike(fixture: str) -> None:
    """One renaming (model_args' sanitize) for both: the ONNX graph's names are the MLX module tree's
    without its `model.`, and Gemma's norm scales are the only values the ONNX side changes."""
    checkpoint = read_checkpoint(fixture_dir(fixture))
    mlx_module, args = mlx_models.MODEL_FILES.load(checkpoint)
    mlx_names = set(mlx_module.Model(args).sanitize(read_weights(checkpoint)))
    onnx_module, _ = onnx_models.MODEL_FILES.load(checkpoint)
    onnx_weights = onnx_module.sanitize(read_onnx_weights(checkpoint))
    assert set(onnx_weights) == {name.removeprefix("model.") for name in mlx_names}
    assert any(name.startswith("dense.") for name in onnx_weights) == (fixture == "gemma3-f32")


def test_the_hub_layout_reads_its_dense_modules() -> None:
    checkpoint = read_checkpoint(fixture_dir("gemma3-f32"))
    assert [path.name for path in checkpoint.dense_modules] == ["2_Dense", "3_Dense"]
    assert {"2_Dense.linear.weight", "3_Dense.linear.weight"} <= set(read_weights(checkpoint))
    assert checkpoint.pooling == "mean" and checkpoint.max_seq_length == 512


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ("config.json", "config.json is missing"),
        ("tokenizer.json", "tokenizer.json is missing"),
        ("model.safetensors", "has no model*.safetensors"),
    ],
)
def test_a_missing_file_is_named(remove: str, message: str, tmp_path: Path) -> None:
    directory = linked_copy("qwen3-f32", tmp_path / "model")
    (directory / remove).unlink()
    with pytest.raises(ModelLoadError, match=message.replace("*", r"\*")):
        load_embedder(directory)


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_embedder(tmp_path / "nowhere")


def test_an_unknown_model_type_names_it_and_the_supported_ones(tmp_path: Path) -> None:
    directory = linked_copy("qwen3-f32", tmp_path / "model")
    rewrite(directory / "config.json", read_json(directory / "config.json") | {"model_type": "t5"})
    supported = ", ".join(sorted(ARCHITECTURES))
    with pytest.raises(ModelLoadError, match=rf"model_type 't5' is not supported; supported: {supported}$"):
        load_embedder(directory)


def test_a_missing_config_field_is_named(tmp_path: Path) -> None:
    directory = linked_copy("gemma3-f32", tmp_path / "model")
    config = read_json(directory / "config.json")
    del config["head_dim"]
    rewrite(directory / "config.json", config)
    with pytest.raises(ModelLoadError, match=r"config\.json.*lacks head_dim"):
        load_embedder(directory)


def test_weights_that_do_not_fit_the_config_are_reported(tmp_path: Path) -> None:
    directory = linked_copy("qwen3-f32", tmp_path / "model")
    rewrite(directory / "config.json", read_json(directory / "config.json") | {"num_hidden_layers": 3})
    with pytest.raises(ModelLoadError, match=r"do not match its qwen3 config.*model\.layers\.2\."):
        load_embedder(directory, backend=BackendOptions(name="mlx"))  # the MLX loader's message


def test_unsupported_sentence_transformers_modules_are_named(tmp_path: Path) -> None:
    directory = linked_copy("gemma3-f32", tmp_path / "model")
    rewrite(
        directory / "2_Dense" / "config.json", {"bias": False, "activation_function": "torch.nn.modules.Tanh"}
    )
    with pytest.raises(ModelLoadError, match=r"2_Dense/config.json: only Dense modules without bias"):
        load_embedder(directory)
    rewrite(directory / "2_Dense" / "config.json", {"bias": False})
    pooling = read_json(directory / "1_Pooling" / "config.json")
    rewrite(
        directory / "1_Pooling" / "config.json",
        pooling | {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True},
    )
    with pytest.raises(ModelLoadError, match=r"enables \['pooling_mode_cls_token'\]"):
        load_embedder(directory)


def test_prompts_come_from_the_checkpoint_when_it_names_them(tmp_path: Path) -> None:
    directory = linked_copy("qwen3-f32", tmp_path / "model")
    prompts = {"query": "Instruct: Find code for the task\nQuery:", "Other": "unused"}
    rewrite(directory / "config_sentence_transformers.json", {"prompts": prompts})
    embedder = load_embedder(directory)
    assert embedder.info.prompts == {"query": prompts["query"], "document": ""}
    assert embedder.tokenize(["x"], "query") != load_embedder(fixture_dir("qwen3-f32")).tokenize(
        ["x"], "query"
    )


def load_safetensors(path: Path) -> dict[str, mx.array]:
    weights = mx.load(str(path))
    assert isinstance(weights, dict)
    return weights


def test_padding_and_truncation_saved_in_the_tokenizer_are_ignored(tmp_path: Path) -> None:
    directory = linked_copy("qwen3-f32", tmp_path / "model")
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.enable_padding(length=40)
    tokenizer.enable_truncation(max_length=8)
    (directory / "tokenizer.json").unlink()
    tokenizer.save(str(directory / "tokenizer.json"))
    texts = ["a short one", "a text that is a good deal longer than eight tokens, by any count"]
    expected = load_embedder(fixture_dir("qwen3-f32")).tokenize(texts, "document")
    assert load_embedder(directory).tokenize(texts, "document") == expected
    assert len(expected[0].ids) < 8 < len(expected[1].ids)


def test_half_precision_weights_load_as_float32(tmp_path: Path) -> None:
    directory = linked_copy("qwen3-f32", tmp_path / "model")
    weights = load_safetensors(directory / "model.safetensors")
    (directory / "model.safetensors").unlink()
    half = {key: value.astype(mx.bfloat16) for key, value in weights.items()}
    mx.save_safetensors(str(directory / "model.safetensors"), half)
    model = load_model(read_checkpoint(directory))
    parameters = tree_flatten(model.parameters(), destination={})
    assert isinstance(parameters, dict)
    assert {value.dtype for value in parameters.values()} == {mx.float32}
    entry = load_reference("qwen3-f32").texts[0]
    vector = load_embedder(directory).embed([entry.text], entry.input_type).vectors[0]
    assert float(vector @ np.array(entry.embedding)) > 0.99


def test_per_layer_quantization_settings_override_the_default(tmp_path: Path) -> None:
    """mlx-lm records mixed-precision conversions as per-module entries in `quantization`."""
    directory = linked_copy("qwen3-f32", tmp_path / "model")
    weights = load_safetensors(directory / "model.safetensors")
    stored = {}
    for key, value in weights.items():
        if "norm" in key:
            stored[f"model.{key}"] = value
            continue
        group_size, bits = (32, 8) if key.startswith("embed_tokens") else (64, 4)
        packed, scales, biases = mx.quantize(value, group_size=group_size, bits=bits)
        base = f"model.{key.removesuffix('.weight')}"
        stored |= {f"{base}.weight": packed, f"{base}.scales": scales, f"{base}.biases": biases}
    (directory / "model.safetensors").unlink()
    mx.save_safetensors(str(directory / "model.safetensors"), stored)
    quantization = {"group_size": 64, "bits": 4, "model.embed_tokens": {"group_size": 32, "bits": 8}}
    rewrite(directory / "config.json", read_json(directory / "config.json") | {"quantization": quantization})

    model = load_model(read_checkpoint(directory))
    embed_tokens = model.model.embed_tokens  # type: ignore[attr-defined]
    assert (embed_tokens.bits, embed_tokens.group_size) == (8, 32)
    entry = load_reference("qwen3-f32").texts[1]
    vector = load_embedder(directory).embed([entry.text], entry.input_type).vectors[0]
    assert float(vector @ np.array(entry.embedding)) > 0.9


def test_auto_device_is_the_gpu_where_mlx_has_one_else_the_cpu() -> None:
    if gpu_available():
        assert select_device("auto") == select_device("gpu") == mx.gpu
    else:
        assert select_device("auto") == mx.cpu
        with pytest.raises(ModelLoadError, match="neither Metal nor CUDA"):
            select_device("gpu")
    assert select_device("cpu") == mx.cpu
