"""A backend's model files, one module per checkpoint `model_type`, found by name (as mlx-lm finds
its own): adding an architecture to a backend is adding a file to its `models/` folder."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from .checkpoint import Checkpoint, ModelLoadError

_SHARED = frozenset({"base"})
"""Modules in a `models/` folder that are not model files."""


class ModelFiles:
    """The model files of one backend's `models/` package; each defines `ModelArgs` and `sanitize`."""

    def __init__(self, package: str, directory: Path, backend: str):
        self._package = package
        self._directory = directory
        self._backend = backend

    def find(self, model_type: str) -> ModuleType | None:
        """The model file for `model_type`, or None when this backend has none."""
        if not model_type.isidentifier() or model_type.startswith("_") or model_type in _SHARED:
            return None
        name = f"{self._package}.{model_type}"
        if importlib.util.find_spec(name) is None:
            return None
        return importlib.import_module(name)

    def supported(self) -> list[str]:
        """The model types that have a model file, sorted."""
        return sorted(
            path.stem
            for path in self._directory.glob("*.py")
            if not path.stem.startswith("_") and path.stem not in _SHARED
        )

    def load(self, checkpoint: Checkpoint) -> tuple[ModuleType, Any]:
        """The checkpoint's model file and its `ModelArgs` read from config.json; `ModelLoadError`
        when this backend has no file for the model type or the config lacks a field."""
        module = self.find(checkpoint.model_type)
        config = checkpoint.directory / "config.json"
        if module is None:
            raise ModelLoadError(
                f"{config}: model_type {checkpoint.model_type!r} is not supported by the {self._backend} "
                f"backend; supported: {', '.join(self.supported())}"
            )
        try:
            return module, module.ModelArgs.from_dict(checkpoint.config)
        except (TypeError, ValueError) as error:
            raise ModelLoadError(f"{config} ({checkpoint.model_type}): {error}") from error
