"""The one list of architectures (`architectures.ARCHITECTURES`) and the model files each backend
finds by `model_type`: adding an architecture is adding files, with no second list to keep in step."""

from __future__ import annotations

import pytest

from akidb_inference.architectures import ARCHITECTURES
from akidb_inference.backends.mlx import models as mlx_models
from akidb_inference.backends.onnx import models as onnx_models
from akidb_inference.model_files import ModelFiles


@pytest.mark.parametrize(
    ("package", "model_files"),
    [(mlx_models.__name__, mlx_models.MODEL_FILES), (onnx_models.__name__, onnx_models.MODEL_FILES)],
    ids=["mlx", "onnx"],
)
def test_every_architecture_has_a_model_file_in_each_backend(package: str, model_files: ModelFiles) -> None:
    assert model_files.supported() == sorted(ARCHITECTURES)
    for model_type in ARCHITECTURES:
        module = model_files.find(model_type)
        assert module is not None and module.__name__ == f"{package}.{model_type}"


@pytest.mark.parametrize("name", ["t5", "base", "_private", "../qwen3", "qwen3.sub", ""])
def test_names_that_are_not_model_files_are_not_found(name: str) -> None:
    assert mlx_models.MODEL_FILES.find(name) is None
    assert onnx_models.MODEL_FILES.find(name) is None
