"""The ONNX Runtime backend: CPU everywhere, CUDA where onnxruntime-gpu and a GPU are present.

Session options: every graph optimisation (ORT_ENABLE_ALL: constant folding, node fusions, memory
layout); the graphs already use single-kernel operators for RMSNorm, RoPE and attention, so no
fusion has to recognise them. Intra-op threads default to the CPU cores this process may use and
sleep rather than spin when idle; inter-op parallelism is off (one branch per graph). On CUDA, small
batches replay captured CUDA graphs (`cuda_graphs`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ...checkpoint import SAFETENSORS_FILES, Checkpoint, ModelLoadError
from ...logs import log
from .. import BackendOptions, Device
from .convert import READY_EXPORTS, graph_file, read_head, ready_export
from .cuda_graphs import GRAPH_TOKENS, PROVIDER_OPTIONS, CudaGraphs
from .graph import HEAD_INPUT, OUTPUT, head_model
from .precision import PRECISIONS
from .weights import read_safetensors

WEIGHT_FILES = (*SAFETENSORS_FILES, *(f"{name}*" for name in READY_EXPORTS))
"""What `download` fetches for this backend: the safetensors it writes graphs from, and a
checkpoint's own ONNX export with its external-data file (`model.onnx_data`, as optimum writes a
graph over 2 GB), used as it is when present."""


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ONNXBackend:
    name = "onnx"

    def __init__(
        self,
        session: ort.InferenceSession,
        head: ort.InferenceSession | None,
        dimension: int,
        device: str,
        precision: str,
        hidden_size: int,
    ) -> None:
        self._session = session
        self._head = head
        self._dimension = dimension
        self._inputs = {value.name: value for value in session.get_inputs()}
        self._output = _hidden_output(session)
        self.device = device
        self.precision = precision
        graphs = session.get_provider_options().get(CUDA, {}).get("enable_cuda_graph") == "1"
        self._graphs = CudaGraphs(session, self._output, hidden_size) if graphs else None

    @classmethod
    def load(cls, checkpoint: Checkpoint, device: Device, options: BackendOptions) -> ONNXBackend:
        providers = _providers(device, ort.get_available_providers())
        if providers[0] == CUDA and hasattr(ort, "preload_dlls"):
            # onnxruntime-gpu's own way to find the CUDA and cuDNN libraries of the nvidia-* pip
            # packages (torch's, say), which are on no library path; without them its CUDA provider
            # falls back to the CPU.
            ort.preload_dlls()
        ready = ready_export(checkpoint)
        if ready is not None:
            path, chosen = ready, "export"
            head = [
                read_safetensors(module / "model.safetensors")["linear.weight"].astype(np.float32)
                for module in checkpoint.dense_modules
            ]
            dimension = head[-1].shape[0] if head else int(checkpoint.config["hidden_size"])
        else:
            chosen = options.onnx_precision
            if chosen not in PRECISIONS:
                raise ModelLoadError(
                    f"ONNX precision {chosen!r} is not supported; supported: {', '.join(PRECISIONS)}"
                )
            path = graph_file(checkpoint, chosen, options.onnx_cache_dir)
            head, stored_dimension = read_head(path)
            dimension = stored_dimension or int(checkpoint.config["hidden_size"])
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session_options.intra_op_num_threads = options.onnx_threads or default_threads()
        session_options.inter_op_num_threads = 1
        session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle pool threads sleep instead of spinning: spinning keeps every core busy between
        # kernels, starving the event loop (/health) and the control plane on the same machine.
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session_options.log_severity_level = 3
        session = _session(path, session_options, providers)
        head_session = None
        if head:
            head_session = ort.InferenceSession(
                head_model(head).SerializeToString(), session_options, providers=providers
            )
        hidden_size = int(checkpoint.config["hidden_size"])
        device_name = _device_name(session.get_providers(), device)
        return cls(session, head_session, dimension, device_name, chosen, hidden_size)

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def bucket_tokens(self) -> int:
        return GRAPH_TOKENS if self._graphs is not None else 0

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {}
        for name, value in self._inputs.items():
            source = {"input_ids": input_ids, "attention_mask": attention_mask}.get(name)
            if source is None:  # token_type_ids of an export: one segment
                source = np.zeros_like(input_ids)
            feeds[name] = source.astype(np.int64 if value.type == "tensor(int64)" else np.int32, copy=False)
        graphs = self._graphs
        if graphs is not None and graphs.takes(input_ids.shape):
            hidden = graphs.run(feeds)
        else:
            hidden = self._session.run([self._output], feeds, graphs.plain if graphs else None)[0]
        return hidden.astype(np.float32, copy=False)

    def project(self, pooled: np.ndarray) -> np.ndarray:
        if self._head is not None:
            feeds = {HEAD_INPUT: np.ascontiguousarray(pooled, dtype=np.float32)}
            projected: np.ndarray = self._head.run([OUTPUT], feeds)[0]
            return projected
        return pooled.astype(np.float32, copy=False)


CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def _session(path: Path, options: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
    """The graph's session; on CUDA one that can capture CUDA graphs, unless the graph has a node the
    CUDA provider cannot run (int8's DynamicQuantizeMatMul, say), which rules graphs out."""
    try:
        if providers[0] == CUDA:
            try:
                return ort.InferenceSession(
                    str(path), options, providers=[(CUDA, PROVIDER_OPTIONS), *providers[1:]]
                )
            except Exception as error:  # onnxruntime raises its own Fail type
                log.warning("no CUDA graphs for this graph; running it plainly", extra={"reason": str(error)})
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelLoadError(f"ONNX Runtime cannot load {path}: {error}") from error


def _providers(device: Device, available: Sequence[str]) -> list[str]:
    """CUDA first for "gpu", and for "auto" where the installed onnxruntime has the CUDA provider
    (onnxruntime-gpu); else the CPU. Whether a GPU is really there shows once the session exists."""
    if device == "gpu" and CUDA not in available:
        raise ModelLoadError(
            "device 'gpu' was requested but ONNX Runtime has no CUDA execution provider "
            "(install onnxruntime-gpu on a machine with an NVIDIA GPU); use 'cpu' or 'auto'"
        )
    return [CUDA, CPU] if device != "cpu" and CUDA in available else [CPU]


def _device_name(providers: Sequence[str], device: Device, gpu_name: Callable[[], str] | None = None) -> str:
    """`cuda:<GPU name>` when the session runs on CUDA, else `cpu`. onnxruntime-gpu offers its CUDA
    provider on any machine and falls back to the CPU, with a warning only, where there is no GPU
    or its CUDA / cuDNN libraries do not load: the session's own providers say which one runs."""
    if providers and providers[0] == CUDA:
        return f"cuda:{(gpu_name or _gpu_name)()}"
    if device == "gpu":
        raise ModelLoadError(
            "device 'gpu' was requested but ONNX Runtime's CUDA provider did not start (no NVIDIA "
            "GPU, or the CUDA and cuDNN libraries onnxruntime-gpu needs are missing); use 'cpu' or 'auto'"
        )
    return "cpu"


def _gpu_name() -> str:
    """The name of the GPU the CUDA provider uses (device 0 of CUDA_VISIBLE_DEVICES), by nvidia-smi."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip() or "0"
    try:
        answer = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", f"--id={visible}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return answer.stdout.strip().splitlines()[0] if answer.stdout.strip() else "unknown"


def _hidden_output(session: ort.InferenceSession) -> str:
    """Ours is `hidden`; exports name it `last_hidden_state` or give it as the first 3-d output."""
    outputs = session.get_outputs()
    for value in outputs:
        if value.name in ("hidden", "last_hidden_state"):
            return str(value.name)
    for value in outputs:
        if len(value.shape) == 3:
            return str(value.name)
    raise ModelLoadError("the ONNX export has no (batch, tokens, hidden) output")
