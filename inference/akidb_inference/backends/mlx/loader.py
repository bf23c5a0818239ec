"""Turning a checkpoint's safetensors into a loaded MLX model (plain or MLX-quantized weights)."""

from __future__ import annotations

from typing import Any, Protocol

import mlx.core as mx
import mlx.nn as nn

from ...checkpoint import Checkpoint, ModelLoadError, require_safetensors
from . import models


class EmbeddingModel(Protocol):
    """What every model file (`models.MODEL_FILES`) defines as `Model`."""

    @property
    def dimension(self) -> int: ...

    def __call__(self, input_ids: mx.array, padding_mask: mx.array) -> mx.array: ...

    def project(self, pooled: mx.array) -> mx.array: ...

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]: ...

    def load_weights(self, file_or_weights: list[tuple[str, mx.array]], strict: bool = True) -> Any: ...

    def parameters(self) -> Any: ...


def load_model(checkpoint: Checkpoint) -> EmbeddingModel:
    """Build the model its config describes and load its weights, cast to float32 activations."""
    module, args = models.MODEL_FILES.load(checkpoint)
    model: EmbeddingModel = module.Model(args)
    weights = model.sanitize(read_weights(checkpoint))
    if checkpoint.quantization is not None:
        _quantize(model, checkpoint, weights)
    # Activations run in float32: float16 overflows in Gemma, and bfloat16 costs accuracy.
    weights = {
        key: value.astype(mx.float32) if mx.issubdtype(value.dtype, mx.floating) else value
        for key, value in weights.items()
    }
    try:
        model.load_weights(list(weights.items()), strict=True)
    except ValueError as error:
        listing = " ".join(str(error).split())  # MLX lists the names one per line
        raise ModelLoadError(
            f"the weights in {checkpoint.directory} do not match its {checkpoint.model_type} config: "
            + listing
        ) from error
    mx.eval(model.parameters())
    return model


def read_weights(checkpoint: Checkpoint) -> dict[str, mx.array]:
    """Every tensor, keyed as stored; a Dense module's keys get its directory name as a prefix."""
    weights: dict[str, mx.array] = {}
    for path in require_safetensors(checkpoint, "MLX"):
        weights.update(_load_file(path))
    for module_dir in checkpoint.dense_modules:
        path = module_dir / "model.safetensors"
        if path.is_file():
            weights.update({f"{module_dir.name}.{key}": value for key, value in _load_file(path).items()})
    return weights


def _load_file(path: Any) -> dict[str, mx.array]:
    try:
        loaded = mx.load(str(path))
    except (OSError, RuntimeError, ValueError) as error:
        raise ModelLoadError(f"{path} cannot be read: {error}") from error
    assert isinstance(loaded, dict)
    return loaded


def single_group_matmul_is_wrong() -> bool:
    """Whether the layers load on CUDA, where `mx.quantized_matmul` is wrong for an input of one
    quantization group (K = group_size; MLX 0.32.4, bench/cuda_quantized_matmul.py)."""
    return mx.default_device() == mx.gpu and bool(mx.cuda.is_available())


def _quantize(model: EmbeddingModel, checkpoint: Checkpoint, weights: dict[str, mx.array]) -> None:
    """Swap in quantized layers wherever the checkpoint has `.scales`; per-layer settings in the
    config's `quantization` (keyed by module path, as mlx-lm writes them) override the default.

    On CUDA, a Linear layer whose input is a single quantization group is dequantized to a plain
    Linear instead (`single_group_matmul_is_wrong`). Real models are not affected (their inputs are
    384+ wide); only tiny test models have such layers. Dequantizing every Linear layer on CUDA was
    measured and bought no speed (docs/benchmarks.md, "GPU"), at 7x the weights' memory.
    """
    assert checkpoint.quantization is not None
    default = checkpoint.quantization
    overrides = checkpoint.config["quantization"]
    single_group_is_wrong = single_group_matmul_is_wrong()
    dequantize: dict[str, dict[str, Any]] = {}

    def predicate(path: str, module: nn.Module) -> bool | dict[str, Any]:
        if f"{path}.scales" not in weights:
            return False
        override = overrides.get(path)
        settings = override if isinstance(override, dict) else {}
        group_size = settings.get("group_size", default.group_size)
        if single_group_is_wrong and isinstance(module, nn.Linear) and module.weight.shape[-1] <= group_size:
            dequantize[path] = {
                "group_size": group_size,
                "bits": settings.get("bits", default.bits),
                "mode": settings.get("mode", default.mode),
            }
            return False
        return override if isinstance(override, dict) else True

    try:
        nn.quantize(
            model,  # type: ignore[arg-type]
            group_size=default.group_size,
            bits=default.bits,
            mode=default.mode,
            class_predicate=predicate,
        )
        for path, settings in dequantize.items():
            biases = weights.pop(f"{path}.biases", None)
            weights[f"{path}.weight"] = mx.dequantize(
                weights[f"{path}.weight"],
                weights.pop(f"{path}.scales").astype(mx.float32),
                None if biases is None else biases.astype(mx.float32),
                **settings,
                stream=mx.cpu,
            )
    except ValueError as error:
        raise ModelLoadError(f"{checkpoint.directory / 'config.json'}: quantization: {error}") from error
