"""Request and response bodies, matching the `inference` operations of openapi.yaml.

Requests are validated by pydantic; a failure becomes an OpenAI-shaped error in `app.py`. The custom
error types raised here (`empty_input`, `token_ids`) are the ones that answer 400 rather than 422.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, WithJsonSchema
from pydantic_core import PydanticCustomError

from .engine import Encoded, InputType


def _as_texts(value: object) -> object:
    """One text becomes a list of one; token ids, which OpenAI also accepts, get their own error."""
    if isinstance(value, str):
        if not value:
            raise PydanticCustomError("empty_input", "input is an empty string; send non-empty text")
        return [value]
    if isinstance(value, list) and value and all(_is_token_ids(item) for item in value):
        raise PydanticCustomError(
            "token_ids",
            "input holds token ids; this server accepts only text (a string or an array of strings)",
        )
    return value


def _is_token_ids(item: object) -> bool:
    def is_id(x: object) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    return is_id(item) or (isinstance(item, list) and bool(item) and all(is_id(x) for x in item))


Texts = Annotated[
    list[Annotated[str, Field(min_length=1)]],
    Field(min_length=1),
    BeforeValidator(_as_texts),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
            ]
        }
    ),
]
"""One text or a non-empty list of non-empty texts, always a list once validated."""


def _not_null(value: object) -> object:
    """An optional field may be left out but not sent as null: the contract's types have no null."""
    if value is None:
        raise PydanticCustomError("null_value", "must not be null; leave the field out instead")
    return value


def _integral(value: object) -> object:
    """JSON Schema, and so the contract, counts 256.0 as an integer; strings and booleans stay errors."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class EmbeddingRequest(BaseModel):
    # An unknown field is a 422 naming it, as in the control plane and OpenAI's API (the contract's
    # EmbeddingRequest has additionalProperties: false).
    model_config = ConfigDict(extra="forbid")

    input: Texts
    model: Annotated[str | None, BeforeValidator(_not_null)] = None
    """Accepted for OpenAI compatibility and ignored: the process serves one model."""
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[StrictInt | None, BeforeValidator(_integral), BeforeValidator(_not_null)] = None
    input_type: InputType = "document"
    normalize: StrictBool = True
    truncate: StrictBool = True
    user: Annotated[str | None, BeforeValidator(_not_null)] = None


class InferenceEmbedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str
    tokens: int
    """Tokens the model computed for this input: prompt and special tokens included, after truncation."""
    truncated: bool
    """The input was cut at the model's max_tokens."""


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class InferenceEmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[InferenceEmbedding]
    model: str
    usage: Usage


def render_embeddings(
    vectors: np.ndarray, encoded: Sequence[Encoded], encoding_format: Literal["float", "base64"], model: str
) -> bytes:
    """An `InferenceEmbeddingResponse` as JSON bytes, built row by row on the worker thread: one pydantic
    pass over a large batch would hold the GIL, and the event loop, for hundreds of milliseconds."""
    if encoding_format == "base64":
        rows = [f'"{base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")}"' for row in vectors]
    else:
        rows = [json.dumps(row.tolist(), separators=(",", ":")) for row in vectors]
    data = ",".join(
        f'{{"object":"embedding","index":{i},"embedding":{row},'
        f'"tokens":{len(item.ids)},"truncated":{"true" if item.truncated else "false"}}}'
        for i, (row, item) in enumerate(zip(rows, encoded, strict=True))
    )
    tokens = sum(len(item.ids) for item in encoded)
    usage = json.dumps({"prompt_tokens": tokens, "total_tokens": tokens}, separators=(",", ":"))
    return f'{{"object":"list","data":[{data}],"model":{json.dumps(model)},"usage":{usage}}}'.encode()


class Quantization(BaseModel):
    bits: int
    group_size: int
    mode: str


class DimensionRange(BaseModel):
    """Any integer size from `min` to `max`."""

    min: int
    max: int


class Prompts(BaseModel):
    query: str
    document: str


class InferenceModel(BaseModel):
    id: str
    """The model source as given: a local directory or a Hugging Face repo id."""
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "akidb"
    architecture: str
    """The checkpoint's `model_type`; `architectures.ARCHITECTURES` lists those served."""
    dimension: int
    matryoshka_dimensions: list[int] | DimensionRange
    """Sizes `dimensions` may take: explicit (ascending, `dimension` included) or a range."""
    max_tokens: int
    pooling: Literal["last_token", "mean"]
    prompts: Prompts
    quantization: Quantization | None
    dtype: str
    backend: Literal["mlx", "onnx"]
    """Which library computes."""
    device: str
    """What computes: "cpu", "metal", "cuda"."""
    load_seconds: float
    resident_memory_bytes: int


class InferenceModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[InferenceModel]


class InferenceHealthReady(BaseModel):
    status: Literal["ready"] = "ready"
    model: InferenceModel


class InferenceHealthNotReady(BaseModel):
    status: Literal["loading", "failed"]
    reason: str


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None
    param: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail
