"""Requests on which schemathesis (test/fuzz.test.ts) found the inference process and the contract
disagreeing. Each is named after what it found; the process now answers as the contract's
EmbeddingRequest says (accepted iff valid, a rejection is a 422 naming the field)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .fixtures import fixture_dir
from .inprocess import AUTH, serve, wait_until

CONTRACT: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "openapi.yaml").read_text(encoding="utf-8")
)
REQUEST_SCHEMA = Draft202012Validator(
    {"$ref": "urn:akidb:openapi#/components/schemas/EmbeddingRequest"},
    registry=Registry().with_resource(
        "urn:akidb:openapi", Resource.from_contents(CONTRACT, default_specification=DRAFT202012)
    ),
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with serve(lambda: fixture_dir("qwen3-4bit")) as ready:
        wait_until(lambda: ready.get("/health").status_code == 200)
        yield ready


REGRESSIONS: list[tuple[str, dict[str, Any], int, str | None]] = [
    ("null_dimensions_was_accepted", {"input": "a", "dimensions": None}, 422, "dimensions"),
    ("null_model_was_accepted", {"input": "a", "model": None}, 422, "model"),
    ("null_user_was_accepted", {"input": "a", "user": None}, 422, "user"),
    ("unknown_field_was_accepted", {"input": "a", "colour": "blue"}, 422, "colour"),
    ("integral_float_dimensions_was_rejected", {"input": "a", "dimensions": 32.0}, 200, None),
]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [case[1:] for case in REGRESSIONS],
    ids=[case[0] for case in REGRESSIONS],
)
def test_the_process_agrees_with_the_contract(
    client: TestClient, body: dict[str, Any], status: int, param: str | None
) -> None:
    response = client.post("/v1/embeddings", json=body, headers=AUTH)

    assert response.status_code == status, response.text
    assert REQUEST_SCHEMA.is_valid(body) == (status == 200)
    if param is not None:
        assert response.json()["error"]["param"] == param


def test_malformed_challenge_is_ignored_not_rejected(client: TestClient) -> None:
    """The contract once gave x-akidb-challenge a pattern, so schemathesis expected a malformed one to
    be refused; the process ignores it (no proof), and the contract now says so."""
    parameters = CONTRACT["paths"]["/inference/health"]["get"]["parameters"]
    challenge = next(p for p in parameters if p["name"] == "x-akidb-challenge")
    assert Draft202012Validator(challenge["schema"]).is_valid("")

    response = client.get("/health", headers={"x-akidb-challenge": ""})

    assert response.status_code == 200
    assert "x-akidb-proof" not in response.headers
