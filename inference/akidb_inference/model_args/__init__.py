"""Each architecture's hyper-parameters, read from the checkpoint's config.json, and the names of
its weights (`sanitize`): one module per `model_type`, shared by every backend's model file (MLX
modules, ONNX graph writers)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, Self


@dataclass
class BaseModelArgs:
    @classmethod
    def from_dict(cls, params: Mapping[str, Any]) -> Self:
        """Keep the fields this class declares; a missing required one raises ValueError."""
        declared = fields(cls)
        missing = [
            f.name
            for f in declared
            if f.name not in params and f.default is MISSING and f.default_factory is MISSING
        ]
        if missing:
            raise ValueError(f"config lacks {', '.join(missing)}")
        return cls(**{f.name: params[f.name] for f in declared if f.name in params})
