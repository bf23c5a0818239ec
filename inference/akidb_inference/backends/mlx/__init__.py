"""The MLX backend: Metal on Apple Silicon, CUDA on NVIDIA GPUs (the `cuda` extra), else the CPU."""

from __future__ import annotations

import sys

import mlx.core as mx
import numpy as np

from ...checkpoint import SAFETENSORS_FILES, Checkpoint, ModelLoadError
from .. import Device
from .loader import EmbeddingModel, load_model

WEIGHT_FILES = SAFETENSORS_FILES
"""What `download` fetches for this backend: safetensors weights (plain or MLX-quantized)."""


def gpu_available() -> bool:
    """Whether this MLX build has a GPU it can use: Metal, or CUDA (the `mlx[cuda13]` build)."""
    return bool(mx.metal.is_available() or mx.cuda.is_available())


def select_device(device: Device) -> mx.DeviceType:
    """ "auto" is the GPU when Metal or CUDA is available, else the CPU."""
    if device == "cpu" or (device == "auto" and not gpu_available()):
        return mx.cpu
    if not gpu_available():
        raise ModelLoadError(
            "device 'gpu' was requested but MLX has neither Metal nor CUDA here (on an NVIDIA host, "
            "install the `cuda` extra: `make setup` does where nvidia-smi works); use 'cpu' or 'auto'"
        )
    return mx.gpu


def device_name(device: mx.DeviceType) -> str:
    """ "cpu", "metal", or "cuda:<GPU name>" (e.g. "cuda:NVIDIA H200")."""
    if device == mx.cpu:
        return "cpu"
    if mx.metal.is_available():
        return "metal"
    return f"cuda:{mx.device_info(mx.gpu).get('device_name', 'unknown')}"


class MLXBackend:
    name = "mlx"

    def __init__(self, model: EmbeddingModel, device: mx.DeviceType):
        self._model = model
        self._device = device

    @classmethod
    def load(cls, checkpoint: Checkpoint, device: Device) -> MLXBackend:
        selected = select_device(device)
        mx.set_default_device(selected)
        with mx.stream(selected):
            return cls(load_model(checkpoint), selected)

    @property
    def device(self) -> str:
        return device_name(self._device)

    @property
    def dimension(self) -> int:
        return self._model.dimension

    @property
    def bucket_tokens(self) -> int:
        # MLX on CUDA compiles kernels on the first use of each shape, for seconds: bucket them all.
        return sys.maxsize if self.device.startswith("cuda") else 0

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        # The server calls from a worker thread: name the device rather than rely on a default.
        with mx.stream(self._device):
            hidden = self._model(mx.array(input_ids, dtype=mx.int32), mx.array(attention_mask))
            return np.array(hidden.astype(mx.float32))

    def project(self, pooled: np.ndarray) -> np.ndarray:
        with mx.stream(self._device):
            return np.array(self._model.project(mx.array(pooled)).astype(mx.float32))
