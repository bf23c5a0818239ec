"""The inference process's settings: where the model comes from, where to listen, and every limit."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .engine import BackendOptions, Device

DEFAULT_CACHE_DIR = Path("~/.cache/akidb/models").expanduser()


@dataclass(frozen=True)
class Settings:
    model: str
    """A local checkpoint directory, `package:NAME/PATH` (a directory inside an installed Python
    package), or a Hugging Face repo id ("org/name") downloaded into `cache_dir`."""
    host: str = "127.0.0.1"
    """Loopback by default: the control plane is the only client and the API has no TLS."""
    port: int = 8081
    """0 lets the OS pick a free port; the "listening" log line names the one bound."""
    cache_dir: Path = DEFAULT_CACHE_DIR
    """Where Hub downloads are kept (huggingface_hub's cache layout), shared by every model."""
    revision: str = "main"
    """Branch, tag or commit of the Hub repo. A commit hash makes start-up reproducible."""
    device: Device = "auto"
    """"auto": the GPU when the backend has one (Metal or CUDA for MLX, CUDA for onnxruntime-gpu),
    else the CPU."""
    backend: BackendOptions = field(default_factory=BackendOptions)
    """Which backend computes ("auto": see `backends.auto_backend`) and the ONNX Runtime options
    (weight precision, threads, graph cache)."""
    log_level: str = "info"
    """"debug" adds a line when each batch starts computing."""
    offline: bool = False
    """Use only the cache, never the network (also when HF_HUB_OFFLINE=1)."""
    token: str | None = None
    """Bearer token every request but /health must carry (from AKIDB_INFERENCE_TOKEN); None disables
    the check, which is only safe because the process listens on loopback."""

    max_inputs: int = 2048
    """Inputs per request (OpenAI's limit). The control plane's batches are far smaller; a larger value
    only lets one client hold the model longer."""
    max_tokens_per_request: int = 131072
    """Tokens per request, prompts included, counted after truncation. Bounds how long one request
    holds the model (the next waits for it) and the size of its response."""
    max_batch_tokens: int = 16384
    """Padded tokens per forward pass: the engine splits larger requests. Higher is faster until
    activations no longer fit in memory (about batch_tokens x hidden x layers x 4 bytes at the peak)."""
    max_queued_requests: int = 16
    """Embedding requests that may wait while another computes; one more is a 429. The control plane
    sends one batch at a time, so a full queue means a client that does not wait for answers, and
    every waiting request holds its texts in memory."""
    max_request_bytes: int = 16 * 1024 * 1024
    """Request body size, checked before the JSON is parsed, so a huge body cannot exhaust memory."""

    download_retries: int = 3
    """Retries of a Hub download after a transient failure (connection, timeout, 429, 5xx)."""
    download_retry_delay: float = 1.0
    """Seconds before the first retry; doubled for each next one."""
    shutdown_grace_seconds: int = 10
    """On SIGTERM/SIGINT, how long in-flight requests may finish before the process exits anyway."""
    exit_with_stdin: bool = False
    """Shut down when standard input reaches end of file. A supervisor that keeps a pipe to it open
    makes the process end with its parent however the parent dies (kill -9 included); off for
    operators, whose shells may start it with stdin already closed."""
