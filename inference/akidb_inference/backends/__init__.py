"""The seam between the engine and a compute library.

A backend turns a checkpoint into two functions on numpy arrays: the transformer's forward pass
over a padded batch, and the model's head on pooled vectors. Tokenization, prompts, batching,
pooling and Matryoshka truncation stay in the engine, so each backend (MLX, ONNX Runtime) only
implements this Protocol. `load_backend` picks one: "auto" is MLX on Metal (Apple Silicon); on
NVIDIA GPUs (the `cuda` extra) ONNX Runtime's CUDA provider, or MLX's CUDA build without it; and
ONNX Runtime on CPUs, where MLX has only a slow path (see `auto_backend`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from ..checkpoint import Checkpoint

Device = Literal["auto", "gpu", "cpu"]
BackendName = Literal["auto", "mlx", "onnx"]
OnnxPrecision = Literal["f32", "int8", "int4"]


@dataclass(frozen=True)
class BackendOptions:
    name: BackendName = "auto"
    """"auto": see `auto_backend`."""
    onnx_precision: OnnxPrecision = "f32"
    """Weight precision of the ONNX graph (an MLX 4-bit checkpoint's weights are dequantized first).
    f32 is the only one that reproduces the reference within 1e-5; int8 (dynamic quantization) is
    about 4x faster on CPUs with int8 dot products, int4 (MatMulNBits) the smallest; their measured
    fidelity is in docs/inference.md."""
    onnx_threads: int | None = None
    """ONNX Runtime intra-op threads; None: the CPU cores this process may run on."""
    onnx_cache_dir: Path | None = None
    """Where written ONNX graphs are cached; None: `.akidb-onnx/` in the checkpoint directory."""


class Backend(Protocol):
    @property
    def name(self) -> str:
        """ "mlx" or "onnx"."""
        ...

    @property
    def device(self) -> str:
        """What computes: "cpu", "metal", "cuda"."""
        ...

    @property
    def dimension(self) -> int:
        """Size of the vectors `project` returns."""
        ...

    @property
    def bucket_tokens(self) -> int:
        """Padded batches of up to this many tokens (rows x width) should come in power-of-two shapes,
        each run once at warm-up (the engine's shape buckets); 0: no shape is worth it."""
        ...

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Final hidden states (batch, tokens, hidden) float32 of a padded batch.

        `input_ids` (batch, tokens) int32; `attention_mask` (batch, tokens) is 1 on real tokens.
        A real token's state does not depend on padding.
        """
        ...

    def project(self, pooled: np.ndarray) -> np.ndarray:
        """The model's head (e.g. EmbeddingGemma's Dense layers) on pooled vectors; float32."""
        ...


def load_backend(checkpoint: Checkpoint, device: Device, options: BackendOptions | None = None) -> Backend:
    """Load the checkpoint's weights on the chosen backend; raises `ModelLoadError`."""
    options = options or BackendOptions()
    if chosen(options) == "mlx":
        from .mlx import MLXBackend

        return MLXBackend.load(checkpoint, device)
    from .onnx import ONNXBackend

    return ONNXBackend.load(checkpoint, device, options)


def chosen(options: BackendOptions) -> Literal["mlx", "onnx"]:
    """The backend `options` selects on this host ("auto" resolved by `auto_backend`)."""
    if options.name != "auto":
        return options.name
    metal, mlx_cuda = mlx_gpus()
    return auto_backend(metal=metal, onnx_cuda=onnx_cuda_available(), mlx_cuda=mlx_cuda)


def auto_backend(*, metal: bool, onnx_cuda: bool, mlx_cuda: bool) -> Literal["mlx", "onnx"]:
    """MLX on Metal. On an NVIDIA GPU, ONNX Runtime where onnxruntime-gpu has its CUDA provider: on an
    H200 it ran the real-size Qwen3-0.6B and EmbeddingGemma shapes 1.1-3.4x faster than MLX's CUDA
    build at one text and 4-6x at 32 (docs/benchmarks.md, "GPU"); else MLX's CUDA build. ONNX
    Runtime on CPUs, where MLX has only a slow path."""
    if metal:
        return "mlx"
    if onnx_cuda:
        return "onnx"
    return "mlx" if mlx_cuda else "onnx"


def weight_files(options: BackendOptions) -> tuple[str, ...]:
    """Download patterns (fnmatch) of the weight files the chosen backend reads or accepts: each
    backend declares its own `WEIGHT_FILES`, since what it can load is its business (ONNX Runtime
    takes a checkpoint's own `model.onnx` export, which MLX cannot use)."""
    if chosen(options) == "mlx":
        from . import mlx

        return mlx.WEIGHT_FILES
    from . import onnx

    return onnx.WEIGHT_FILES


def mlx_gpus() -> tuple[bool, bool]:
    """Whether MLX has Metal here, and whether it has CUDA (its CUDA build, the `cuda` extra)."""
    try:
        import mlx.core as mx
    except ImportError:
        return False, False
    return bool(mx.metal.is_available()), bool(mx.cuda.is_available())


def onnx_cuda_available() -> bool:
    """Whether the installed ONNX Runtime has the CUDA provider (onnxruntime-gpu, the `cuda` extra).
    It offers it on any machine; the session reports a fallback to the CPU (see `ONNXBackend`)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()
