"""ONNX graph writers, one module per checkpoint `model_type` (`model_files.ModelFiles`), each with
`ModelArgs` and `sanitize` (from `akidb_inference.model_args`, shared with the MLX model files) and
`build`."""

from __future__ import annotations

from pathlib import Path

from ....model_files import ModelFiles

MODEL_FILES = ModelFiles(__name__, Path(__file__).parent, backend="ONNX")
