"""`python -m akidb_inference --model <dir | package:NAME/PATH | org/name>`: serve one embedding model.

Logs are JSON lines on stderr; the "listening" line carries the bound port (useful with --port 0).
SIGTERM and SIGINT stop the server gracefully: in-flight requests finish (up to --shutdown-grace),
then the process exits with status 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import uvicorn
from huggingface_hub import constants

from .app import create_app
from .architectures import ARCHITECTURES
from .backends import BackendOptions, weight_files
from .download import PACKAGE_PREFIX, resolve_model_dir
from .logs import configure_logging, log
from .settings import DEFAULT_CACHE_DIR, Settings
from .worker import ModelWorker

TOKEN_VARIABLE = "AKIDB_INFERENCE_TOKEN"


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    defaults = Settings(model="")
    parser = argparse.ArgumentParser(
        prog="python -m akidb_inference",
        description=f"Serve one embedding model (model_type {', '.join(sorted(ARCHITECTURES))}) over "
        f"HTTP. When {TOKEN_VARIABLE} is set, every request but /health needs 'Authorization: Bearer <it>'.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--model",
        required=True,
        help="checkpoint directory, package:NAME/PATH (a directory in an installed Python package), "
        "or Hugging Face repo id (org/name) to download",
    )
    add("--host", default=defaults.host, help="address to bind; keep loopback, the API has no TLS")
    add("--port", type=int, default=defaults.port, help="port to bind; 0 picks a free one (logged)")
    add("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="where Hub downloads are cached")
    add("--revision", default=defaults.revision, help="branch, tag or commit of the Hub repo")
    add(
        "--device",
        choices=["auto", "gpu", "cpu"],
        default=defaults.device,
        help="auto: the backend's GPU if any",
    )
    add(
        "--backend",
        choices=["auto", "mlx", "onnx"],
        default=defaults.backend.name,
        help="auto: MLX on Metal; on NVIDIA (cuda extra) ONNX Runtime's CUDA provider, else MLX's "
        "CUDA build; ONNX Runtime on CPUs",
    )
    add(
        "--onnx-precision",
        choices=["f32", "int8", "int4"],
        default=defaults.backend.onnx_precision,
        help="ONNX graph weight precision: f32 matches the reference; int8 is faster, int4 smaller",
    )
    add(
        "--onnx-threads",
        type=int,
        default=None,
        help="ONNX Runtime intra-op threads (default: the CPU cores this process may use)",
    )
    add(
        "--onnx-cache-dir",
        type=Path,
        default=None,
        help="where written ONNX graphs are cached (default: .akidb-onnx/ in the checkpoint directory; "
        "for a package: model, akidb-onnx/<package>/ in --cache-dir)",
    )
    add(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default=defaults.log_level,
        help="debug adds a line when each batch starts computing",
    )
    add(
        "--offline",
        action="store_true",
        default=constants.HF_HUB_OFFLINE,
        help="use only the cache, never the network; HF_HUB_OFFLINE=1 turns it on",
    )
    add("--max-inputs", type=int, default=defaults.max_inputs, help="inputs per request (413 above)")
    add(
        "--max-tokens-per-request",
        type=int,
        default=defaults.max_tokens_per_request,
        help="tokens per request after truncation, prompts included (413 above)",
    )
    add(
        "--max-batch-tokens",
        type=int,
        default=defaults.max_batch_tokens,
        help="padded tokens per forward pass; larger requests are split (memory vs throughput)",
    )
    add(
        "--max-queued-requests",
        type=int,
        default=defaults.max_queued_requests,
        help="embedding requests that may wait while one computes (429 above)",
    )
    add(
        "--max-request-bytes",
        type=int,
        default=defaults.max_request_bytes,
        help="request body size, checked before parsing (413 above)",
    )
    add(
        "--download-retries",
        type=int,
        default=defaults.download_retries,
        help="retries of a Hub download after a transient failure (exponential backoff from 1 s)",
    )
    add(
        "--shutdown-grace",
        type=int,
        default=defaults.shutdown_grace_seconds,
        help="seconds in-flight requests may take to finish after SIGTERM/SIGINT",
    )
    add(
        "--exit-with-stdin",
        action="store_true",
        help="shut down gracefully when standard input closes (the control plane holds it open, so "
        "the process never outlives its parent, even one killed with SIGKILL)",
    )
    args = parser.parse_args(argv)
    return Settings(
        model=args.model,
        host=args.host,
        port=args.port,
        cache_dir=args.cache_dir,
        revision=args.revision,
        device=args.device,
        backend=BackendOptions(
            name=args.backend,
            onnx_precision=args.onnx_precision,
            onnx_threads=args.onnx_threads,
            onnx_cache_dir=args.onnx_cache_dir or package_graph_cache(args.model, args.cache_dir),
        ),
        log_level=args.log_level,
        offline=args.offline,
        token=os.environ.get(TOKEN_VARIABLE) or None,
        max_inputs=args.max_inputs,
        max_tokens_per_request=args.max_tokens_per_request,
        max_batch_tokens=args.max_batch_tokens,
        max_queued_requests=args.max_queued_requests,
        max_request_bytes=args.max_request_bytes,
        download_retries=args.download_retries,
        shutdown_grace_seconds=args.shutdown_grace,
        exit_with_stdin=args.exit_with_stdin,
    )


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for server in self.servers:
            for listener in server.sockets:
                host, port = listener.getsockname()[:2]
                log.info("listening", extra={"host": host, "port": port, "url": f"http://{host}:{port}"})


def package_graph_cache(model: str, cache_dir: Path) -> Path | None:
    """Where the ONNX graphs of a `package:NAME/PATH` model are cached: under the model cache, not
    beside the checkpoint, which lies inside site-packages (read-only for some installs, and wiped
    by every reinstall). None for other models: their graphs stay beside the checkpoint."""
    if not model.startswith(PACKAGE_PREFIX):
        return None
    return cache_dir / "akidb-onnx" / model.removeprefix(PACKAGE_PREFIX).replace("/", "--")


def _stop_at_stdin_eof(server: uvicorn.Server) -> None:
    # os.read, not sys.stdin: a daemon thread blocked inside the buffered reader holds its lock, and
    # the interpreter's exit then aborts (SIGABRT) trying to take it.
    while os.read(sys.stdin.fileno(), 4096):
        pass
    log.info("standard input closed: the parent is gone, shutting down")
    server.handle_exit(signal.SIGTERM, None)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_settings(argv)
    configure_logging(settings.log_level.upper())
    log.info(
        "starting",
        extra={
            "model": settings.model,
            "revision": settings.revision,
            "device": settings.device,
            "backend": settings.backend.name,
            "offline": settings.offline,
            "auth": settings.token is not None,
            "pid": os.getpid(),
        },
    )
    # MLX's CUDA build compiles its kernels on first use, and caches them where this says: beside
    # the models, so that a restart's warm-up finds them compiled (docs/inference.md, "NVIDIA GPUs").
    os.environ.setdefault("MLX_PTX_CACHE_DIR", str(settings.cache_dir / "mlx-kernels"))
    model_dir = partial(
        resolve_model_dir,
        settings.model,
        cache_dir=settings.cache_dir,
        revision=settings.revision,
        offline=settings.offline,
        retries=settings.download_retries,
        retry_delay=settings.download_retry_delay,
        weight_files=weight_files(settings.backend),
    )
    worker = ModelWorker(
        model_dir,
        device=settings.device,
        max_batch_tokens=settings.max_batch_tokens,
        backend=settings.backend,
    )
    config = uvicorn.Config(
        create_app(settings, worker),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    server = _Server(config)
    # uvicorn re-raises the signal that stopped it once it has shut down; routing that back to its
    # own handler (a no-op by then) lets the process exit with status 0 instead of dying of it.
    for handled in (signal.SIGINT, signal.SIGTERM):
        signal.signal(handled, server.handle_exit)
    if settings.exit_with_stdin:
        threading.Thread(target=_stop_at_stdin_eof, args=(server,), name="stdin-watch", daemon=True).start()
    try:
        server.run()
    except SystemExit as stop:  # how uvicorn reports that it could not bind or start
        status = stop.code if isinstance(stop.code, int) else 1
    else:
        status = 0
    log.info("stopped", extra={"exit_status": status})
    if worker.busy:
        # A download or load is still running on the model thread and cannot be interrupted; waiting
        # would delay shutdown for minutes, and ending a thread inside MLX at interpreter exit can abort.
        logging.shutdown()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
