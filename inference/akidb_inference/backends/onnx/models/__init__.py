"""ONNX graph writers, one module per checkpoint `model_type`, each with `ModelArgs` (imported from
`akidb_inference.model_args`, shared with the MLX model files), `sanitize` and `build`."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

SUPPORTED = tuple(
    sorted(
        p.stem for p in Path(__file__).parent.glob("*.py") if not p.stem.startswith("_") and p.stem != "base"
    )
)


def find(model_type: str) -> ModuleType | None:
    """The writer module for `model_type`, or None when the ONNX backend has none."""
    if model_type not in SUPPORTED:
        return None
    return importlib.import_module(f"{__name__}.{model_type}")
