"""MLX model files, one per checkpoint `model_type`."""

from __future__ import annotations

from types import ModuleType

from . import bert, gemma3_text, qwen3

MODELS: dict[str, ModuleType] = {"qwen3": qwen3, "gemma3_text": gemma3_text, "bert": bert}
