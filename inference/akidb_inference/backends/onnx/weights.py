"""A checkpoint's tensors as float32 numpy arrays, without MLX or torch: safetensors read directly
(float32, float16, bfloat16), MLX affine-quantized layers dequantized."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ...checkpoint import Checkpoint, ModelLoadError, require_safetensors

_DTYPES = {
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,
    "F64": np.float64,
    "I64": np.int64,
    "I32": np.int32,
    "U32": np.uint32,
    "U8": np.uint8,
    "I8": np.int8,
}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of one file; bfloat16 comes back as float32 (numpy has no bfloat16). The others
    are read-only views of the memory-mapped file: file-backed pages the OS can drop, not a copy
    (a 2.4 GB checkpoint would otherwise sit in memory beside the graph written from it)."""
    try:
        with path.open("rb") as file:
            (header_size,) = struct.unpack("<Q", file.read(8))
            header = json.loads(file.read(header_size))
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_size)
    except (OSError, ValueError, struct.error) as error:
        raise ModelLoadError(f"{path} cannot be read: {error}") from error
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(entry["dtype"])
        if dtype is None:
            raise ModelLoadError(f"{path}: tensor {name} has dtype {entry['dtype']}, which is not supported")
        start, end = entry["data_offsets"]
        array = data[start:end].view(dtype).reshape(entry["shape"])
        if entry["dtype"] == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = array
    return tensors


def read_weights(checkpoint: Checkpoint) -> dict[str, np.ndarray]:
    """Every tensor, keyed as stored, quantized layers dequantized to float32 (keyed `<layer>.weight`);
    a sentence-transformers Dense module's keys get its directory name as a prefix."""
    weights: dict[str, np.ndarray] = {}
    for path in require_safetensors(checkpoint, "ONNX Runtime"):
        weights.update(read_safetensors(path))
    for module_dir in checkpoint.dense_modules:
        path = module_dir / "model.safetensors"
        if path.is_file():
            weights.update(
                {f"{module_dir.name}.{key}": value for key, value in read_safetensors(path).items()}
            )
    if checkpoint.quantization is not None:
        weights = _dequantized(weights, checkpoint)
    return {
        key: value.astype(np.float32, copy=False) if value.dtype.kind == "f" else value
        for key, value in weights.items()
    }


def layer_quantization(checkpoint: Checkpoint, layer: str) -> tuple[int, int]:
    """(bits, group_size) of an MLX-quantized layer: the per-layer override if any, else the default."""
    assert checkpoint.quantization is not None
    override: Any = checkpoint.config["quantization"].get(layer)
    if isinstance(override, dict):
        return int(override.get("bits", checkpoint.quantization.bits)), int(
            override.get("group_size", checkpoint.quantization.group_size)
        )
    return checkpoint.quantization.bits, checkpoint.quantization.group_size


def unpack(packed: np.ndarray, bits: int) -> np.ndarray:
    """MLX's packing: `32 // bits` values per uint32, from the low bits upward."""
    if 32 % bits:
        raise ModelLoadError(
            f"{bits}-bit MLX quantization is not supported by the ONNX backend; supported: 2, 4, 8"
        )
    shifts = np.arange(32 // bits, dtype=np.uint32) * bits
    values = (packed[..., None] >> shifts) & np.uint32((1 << bits) - 1)
    return values.reshape(*packed.shape[:-1], -1).astype(np.uint8)


def dequantize(
    packed: np.ndarray, scales: np.ndarray, biases: np.ndarray, bits: int, group_size: int
) -> np.ndarray:
    """w = scales * q + biases per group of `group_size` inputs (MLX affine quantization)."""
    q = unpack(packed, bits).reshape(packed.shape[0], -1, group_size).astype(np.float32)
    w: np.ndarray = q * scales.astype(np.float32)[..., None] + biases.astype(np.float32)[..., None]
    return w.reshape(packed.shape[0], -1)


def _dequantized(weights: dict[str, np.ndarray], checkpoint: Checkpoint) -> dict[str, np.ndarray]:
    if checkpoint.quantization is not None and checkpoint.quantization.mode != "affine":
        raise ModelLoadError(
            f"{checkpoint.directory / 'config.json'}: quantization mode {checkpoint.quantization.mode!r} "
            "is not supported by the ONNX backend; supported: affine"
        )
    result = {}
    for key, value in weights.items():
        layer = key.removesuffix(".weight")
        if key.endswith((".scales", ".biases")) and f"{key.rsplit('.', 1)[0]}.weight" in weights:
            continue
        if key.endswith(".weight") and f"{layer}.scales" in weights:
            bits, group_size = layer_quantization(checkpoint, layer)
            value = dequantize(
                value, weights[f"{layer}.scales"], weights[f"{layer}.biases"], bits, group_size
            )
        result[key] = value
    return result
