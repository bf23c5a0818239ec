"""The error table and the helpers that word errors."""

from __future__ import annotations

import pytest

from akidb_inference import errors
from akidb_inference.architectures import ARCHITECTURES, SizeRange, compact_sizes, describe_sizes
from akidb_inference.errors import field_path


def test_every_error_type_has_one_status_and_an_openai_type() -> None:
    kinds = set(errors.ApiError.__subclasses__())

    assert set(errors.ERROR_TABLE) == kinds
    for status, error_type in errors.ERROR_TABLE.values():
        assert 400 <= status < 600
        assert error_type in {
            "invalid_request_error",
            "authentication_error",
            "not_found_error",
            "rate_limit_error",
            "server_error",
        }


def test_an_error_becomes_the_openai_shape_with_its_status() -> None:
    error = errors.TooLarge("input has 9 items", code="too_many_inputs", param="input")
    response = errors.error_response(error)

    assert response.status_code == 413
    assert response.body == (
        b'{"error":{"message":"input has 9 items","type":"invalid_request_error",'
        b'"code":"too_many_inputs","param":"input"}}'
    )


@pytest.mark.parametrize(
    ("dimensions", "described"),
    [
        (tuple(range(32, 1025)), "32..1024"),
        ((128, 256, 512, 768), "128, 256, 512, 768"),
        ((64, 32), "32, 64"),
        ((768,), "768"),
    ],
)
def test_allowed_dimensions_are_described_compactly(dimensions: tuple[int, ...], described: str) -> None:
    assert describe_sizes(dimensions) == described


@pytest.mark.parametrize(
    ("model_type", "dimension", "compact"),
    [
        ("qwen3", 1024, SizeRange(32, 1024)),
        ("gemma3_text", 768, [128, 256, 512, 768]),
        ("bert", 384, [384]),
    ],
)
def test_real_models_report_their_matryoshka_sizes_compactly(
    model_type: str, dimension: int, compact: list[int] | SizeRange
) -> None:
    assert compact_sizes(ARCHITECTURES[model_type].matryoshka_dimensions(dimension)) == compact


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("body",), None),
        (("body", "input"), "input"),
        (("body", "input", 3), "input[3]"),
        (("body", "prompts", "query"), "prompts.query"),
    ],
)
def test_a_validation_location_becomes_the_field_path(loc: tuple[int | str, ...], path: str | None) -> None:
    assert field_path(loc) == path
