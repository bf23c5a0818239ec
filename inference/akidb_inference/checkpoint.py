"""Reading a checkpoint directory: Hugging Face / sentence-transformers files, as published or as
converted to MLX. Nothing here depends on a backend."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_GLOB = "model*.safetensors"
CHECKPOINT_FILES = ("*.json",)
"""What `read_checkpoint` reads, as download patterns (fnmatch, `*` matches `/`): config.json,
tokenizer.json and the sentence-transformers module configs (modules.json, 1_Pooling/, 2_Dense/...).
Weights are the backend's to name (its `WEIGHT_FILES`)."""
SAFETENSORS_FILES = ("*.safetensors",)
"""Download patterns of the safetensors weights, the Dense modules' included: `weight_files` and
`dense_modules` below."""

_POOLING_MODES = {"pooling_mode_lasttoken": "last_token", "pooling_mode_mean_tokens": "mean"}
_IDENTITY = "torch.nn.modules.linear.Identity"
_ST = "sentence_transformers.models."
_TRANSFORMER, _POOLING, _DENSE, _NORMALIZE = (
    _ST + name for name in ("Transformer", "Pooling", "Dense", "Normalize")
)


class ModelLoadError(Exception):
    """The checkpoint cannot be loaded; the message names the directory, file or model_type."""


@dataclass(frozen=True)
class Quantization:
    """How the checkpoint's weights are quantized (MLX affine: w = scales * q + biases per group)."""

    bits: int
    group_size: int
    mode: str


@dataclass(frozen=True)
class Checkpoint:
    directory: Path
    config: dict[str, Any]
    """The parsed config.json."""
    model_type: str
    tokenizer_file: Path
    weight_files: tuple[Path, ...]
    """The transformer's safetensors files (MLX conversions also put the Dense head here); empty
    when there are none (a backend that needs them says so: `require_safetensors`)."""
    dense_modules: tuple[Path, ...]
    """Directories of the sentence-transformers Dense modules, in pipeline order."""
    quantization: Quantization | None
    pooling: str | None
    """From the Pooling module's config, when the checkpoint has one."""
    prompts: dict[str, str] | None
    """`prompts` of config_sentence_transformers.json, when the checkpoint has one."""
    max_seq_length: int | None
    """From sentence_bert_config.json, when the checkpoint has one."""


def read_checkpoint(directory: Path) -> Checkpoint:
    """Read and check the files of `directory`; raises `ModelLoadError` naming what is wrong."""
    if not directory.is_dir():
        raise ModelLoadError(f"model directory {directory} does not exist")
    config = _read_json(directory / CONFIG_FILE)
    if config is None:
        raise ModelLoadError(f"{directory / CONFIG_FILE} is missing")
    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        raise ModelLoadError(f"{directory / CONFIG_FILE} has no model_type")
    tokenizer_file = directory / TOKENIZER_FILE
    if not tokenizer_file.is_file():
        raise ModelLoadError(f"{tokenizer_file} is missing (a tokenizers-library tokenizer.json is required)")
    weight_files = tuple(sorted(directory.glob(WEIGHTS_GLOB)))

    pooling_dir, dense_modules = _read_modules(directory)
    st_config = _read_json(directory / "config_sentence_transformers.json")
    bert_config = _read_json(directory / "sentence_bert_config.json")
    return Checkpoint(
        directory=directory,
        config=config,
        model_type=model_type,
        tokenizer_file=tokenizer_file,
        weight_files=weight_files,
        dense_modules=dense_modules,
        quantization=_read_quantization(config, directory / CONFIG_FILE),
        pooling=_read_pooling(pooling_dir / CONFIG_FILE),
        prompts=st_config.get("prompts") if st_config else None,
        max_seq_length=bert_config.get("max_seq_length") if bert_config else None,
    )


def require_safetensors(checkpoint: Checkpoint, backend: str) -> tuple[Path, ...]:
    """`checkpoint.weight_files`, or `ModelLoadError` naming what `backend` needs when there are none."""
    if not checkpoint.weight_files:
        raise ModelLoadError(
            f"{checkpoint.directory} has no {WEIGHTS_GLOB} (the {backend} backend reads safetensors weights)"
        )
    return checkpoint.weight_files


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        parsed = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{path} cannot be read: {error}") from error
    if not isinstance(parsed, dict):
        raise ModelLoadError(f"{path} is not a JSON object")
    return parsed


def _read_modules(directory: Path) -> tuple[Path, tuple[Path, ...]]:
    """The Pooling module's directory and the Dense modules' directories, from modules.json."""
    path = directory / "modules.json"
    if not path.is_file():
        return directory / "1_Pooling", ()
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
        entries = [(module["type"], directory / module["path"]) for module in modules]
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise ModelLoadError(f"{path} cannot be read: {error}") from error
    pooling_dir = directory / "1_Pooling"
    dense: list[Path] = []
    for module_type, module_dir in entries:
        if module_type == _POOLING:
            pooling_dir = module_dir
        elif module_type == _DENSE:
            _check_dense(module_dir / CONFIG_FILE)
            dense.append(module_dir)
        elif module_type not in (_TRANSFORMER, _NORMALIZE):
            raise ModelLoadError(
                f"{path} lists module {module_type}; supported: Transformer, Pooling, Dense, Normalize"
            )
    return pooling_dir, tuple(dense)


def _check_dense(path: Path) -> None:
    config = _read_json(path) or {}
    activation = config.get("activation_function", _IDENTITY)
    if activation != _IDENTITY or config.get("bias", False):
        raise ModelLoadError(
            f"{path}: only Dense modules without bias and activation are supported "
            f"(found bias={config.get('bias')}, activation_function={activation})"
        )


def _read_pooling(path: Path) -> str | None:
    config = _read_json(path)
    if config is None:
        return None
    modes = [mode for key, mode in _POOLING_MODES.items() if config.get(key)]
    enabled = sorted(key for key, value in config.items() if key.startswith("pooling_mode") and value)
    if len(modes) != 1 or len(enabled) != 1:
        raise ModelLoadError(
            f"{path} enables {enabled or 'no pooling mode'}; "
            f"supported: exactly one of {sorted(_POOLING_MODES)}"
        )
    if not config.get("include_prompt", True):
        raise ModelLoadError(f"{path}: include_prompt=false is not supported")
    return modes[0]


def _read_quantization(config: dict[str, Any], path: Path) -> Quantization | None:
    quantization = config.get("quantization")
    if quantization is None:
        return None
    try:
        return Quantization(
            bits=int(quantization["bits"]),
            group_size=int(quantization["group_size"]),
            mode=str(quantization.get("mode", "affine")),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ModelLoadError(f"{path}: quantization needs bits and group_size ({error})") from error
