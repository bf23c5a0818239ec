"""MLX model files, one per checkpoint `model_type`, found by name (as mlx-lm finds its own): adding
an architecture is adding a file here and its entry in `architectures.ARCHITECTURES`."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

_SHARED = frozenset({"base"})
"""Modules here that are not model files."""


def find(model_type: str) -> ModuleType | None:
    """The model file for `model_type`, or None when the MLX backend has none."""
    if not model_type.isidentifier() or model_type.startswith("_") or model_type in _SHARED:
        return None
    name = f"{__name__}.{model_type}"
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def supported() -> list[str]:
    """The model types that have a model file, sorted."""
    return sorted(
        path.stem
        for path in Path(__file__).parent.glob("*.py")
        if not path.stem.startswith("_") and path.stem not in _SHARED
    )
