"""From a checkpoint to an ONNX graph file: written by the architecture's writer, brought to the
requested weight precision, cached beside the checkpoint keyed by the checkpoint's hash, reused.

A ready export in the checkpoint directory (`model.onnx` or `onnx/model.onnx`, as
text-embeddings-inference accepts) is used as it is.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime

from ...checkpoint import Checkpoint, ModelLoadError, require_safetensors
from . import models
from .graph import GraphWriter
from .precision import Precision
from .weights import read_weights

READY_EXPORTS = ("model.onnx", "onnx/model.onnx")
CACHE_DIR_NAME = ".akidb-onnx"
GRAPH_FILE = "model.onnx"
DATA_FILE = f"{GRAPH_FILE}.data"
HEAD_FILE = "head.npz"
_SOURCES = Path(__file__).parent


def ready_export(checkpoint: Checkpoint) -> Path | None:
    """The checkpoint's own ONNX export, if it ships one."""
    for name in READY_EXPORTS:
        if (checkpoint.directory / name).is_file():
            return checkpoint.directory / name
    return None


def graph_file(checkpoint: Checkpoint, weights: Precision, cache_dir: Path | None = None) -> Path:
    """The cached graph for `checkpoint` at `weights` precision, written first when missing.

    Cached under `<checkpoint>/.akidb-onnx/` (or `cache_dir`) in a directory named by the precision
    and a hash of the checkpoint's files, the writers' source and the onnxruntime version, so a
    changed checkpoint or writer never reuses a stale graph. Safe for concurrent processes: one
    writes while the others wait on a lock. Raises `ModelLoadError`.
    """
    root = cache_dir or checkpoint.directory / CACHE_DIR_NAME
    key = checkpoint_key(checkpoint)
    target = root / f"{weights}-{key[:20]}"
    if (target / GRAPH_FILE).is_file():
        return target / GRAPH_FILE
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock_file = (root / f".{weights}.lock").open("w")
    except OSError as error:
        raise ModelLoadError(
            f"cannot write the ONNX graph cache in {root}: {error}; point the cache elsewhere"
        ) from error
    with lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if (target / GRAPH_FILE).is_file():
            return target / GRAPH_FILE
        staging = Path(tempfile.mkdtemp(prefix=f".{weights}-", dir=root))
        try:
            _write(checkpoint, weights, staging)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        for stale in root.glob(f"{weights}-*"):
            if stale != target:
                shutil.rmtree(stale, ignore_errors=True)
    return target / GRAPH_FILE


def checkpoint_key(checkpoint: Checkpoint) -> str:
    digest = hashlib.sha256()
    digest.update(onnxruntime.__version__.encode())
    # What writes the graph, not the session code beside it in __init__.py.
    for source in sorted(_SOURCES.rglob("*.py")):
        if source.name != "__init__.py" or source.parent.name == "models":
            digest.update(source.read_bytes())
    for path in _checkpoint_files(checkpoint):
        digest.update(path.name.encode())
        with path.open("rb") as file:
            while chunk := file.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def _checkpoint_files(checkpoint: Checkpoint) -> Iterable[Path]:
    yield checkpoint.directory / "config.json"
    yield from require_safetensors(checkpoint, "ONNX")
    for module in checkpoint.dense_modules:
        yield from sorted(module.glob("*"))


def _write(checkpoint: Checkpoint, weights: Precision, directory: Path) -> None:
    module, args = models.MODEL_FILES.load(checkpoint)
    tensors = _ReadOnce(module.sanitize(read_weights(checkpoint)))
    mismatch = f"the weights in {checkpoint.directory} do not match its {checkpoint.model_type} config"
    with (directory / DATA_FILE).open("wb") as data:
        try:
            built = module.build(args, tensors, GraphWriter(data, DATA_FILE, weights))
        except KeyError as error:
            raise ModelLoadError(f"{mismatch}: missing {error.args[0]}") from error
    # As strict as the MLX loader: weights the config has no place for mean the wrong config.
    if unread := sorted(tensors):
        raise ModelLoadError(
            f"{mismatch}: unexpected {', '.join(unread[:5])}" + (" ..." if unread[5:] else "")
        )
    # The weights are in DATA_FILE already: what is saved here is the graph and their offsets.
    onnx.save_model(built.graph, str(directory / GRAPH_FILE))
    np.savez(directory / HEAD_FILE, *built.head, dimension=np.int64(built.dimension))


def read_head(graph: Path) -> tuple[list[np.ndarray], int | None]:
    """The head weights and the output dimension stored beside a cached graph (none beside a ready
    export: its Dense modules, if any, are read from the checkpoint)."""
    path = graph.parent / HEAD_FILE
    if not path.is_file():
        return [], None
    with np.load(path) as stored:
        head = [stored[f"arr_{i}"] for i in range(len(stored.files) - 1)]
        return head, int(stored["dimension"])


class _ReadOnce(dict[str, np.ndarray]):
    """A writer's weights, each handed out once and then dropped, so that a weight's memory is freed
    as soon as the graph holds its copy; what is left at the end was never read."""

    def __getitem__(self, key: str) -> np.ndarray:
        return self.pop(key)

    def get(self, key: str, default: Any = None) -> Any:
        return self.pop(key, default)
