"""The one list of architectures (`architectures.ARCHITECTURES`) and the model files each backend
finds by `model_type`: adding an architecture is adding files, with no second list to keep in step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType

import pytest

from akidb_inference.architectures import ARCHITECTURES
from akidb_inference.backends.mlx import models as mlx_models
from akidb_inference.backends.onnx import models as onnx_models


@pytest.mark.parametrize(
    ("package", "find", "supported"),
    [
        (mlx_models.__name__, mlx_models.find, mlx_models.supported()),
        (onnx_models.__name__, onnx_models.find, onnx_models.SUPPORTED),
    ],
    ids=["mlx", "onnx"],
)
def test_every_architecture_has_a_model_file_in_each_backend(
    package: str, find: Callable[[str], ModuleType | None], supported: Sequence[str]
) -> None:
    assert sorted(supported) == sorted(ARCHITECTURES)
    for model_type in ARCHITECTURES:
        module = find(model_type)
        assert module is not None and module.__name__ == f"{package}.{model_type}"


@pytest.mark.parametrize("name", ["t5", "base", "_private", "../qwen3", "qwen3.sub", ""])
def test_names_that_are_not_model_files_are_not_found(name: str) -> None:
    assert mlx_models.find(name) is None
