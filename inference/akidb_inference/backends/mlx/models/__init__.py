"""MLX model files, one per checkpoint `model_type` (`model_files.ModelFiles`): adding an
architecture is adding a file here and its entry in `architectures.ARCHITECTURES`."""

from __future__ import annotations

from pathlib import Path

from ....model_files import ModelFiles

MODEL_FILES = ModelFiles(__name__, Path(__file__).parent, backend="MLX")
