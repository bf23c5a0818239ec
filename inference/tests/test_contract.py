"""The app against the contract: the `inference` operations of openapi.yaml (served without the
`/inference` prefix), their documented statuses, real responses validated with the contract's
schemas, and requests accepted exactly when the contract's request schema accepts them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .conftest import AutoBackend
from .fixtures import fixture_dir
from .inprocess import AUTH, make_app, serve, wait_until

CONTRACT_FILE = Path(__file__).resolve().parents[2] / "openapi.yaml"
CONTRACT: dict[str, Any] = yaml.safe_load(CONTRACT_FILE.read_text(encoding="utf-8"))
CONTRACT_URI = "urn:akidb:openapi"
REGISTRY: Registry[Any] = Registry().with_resource(
    CONTRACT_URI, Resource.from_contents(CONTRACT, default_specification=DRAFT202012)
)
PREFIX = "/inference"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
"""The keys of a path item that are operations (others: `parameters`, `summary`, ...)."""
FIXTURE = "qwen3-4bit"
"""Quantized, so that the model card's quantization object is checked too."""


def contract_operations() -> dict[tuple[str, str], dict[str, Any]]:
    """(path as served, method) -> operation, for the operations tagged `inference`."""
    return {
        (path.removeprefix(PREFIX), method): operation
        for path, item in CONTRACT["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS and "inference" in operation.get("tags", [])
    }


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = CONTRACT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validator_for(path: str, method: str, status: int) -> Draft202012Validator:
    response = resolve(contract_operations()[(path, method)]["responses"][str(status)])
    schema = response["content"]["application/json"]["schema"]
    assert set(schema) == {"$ref"}, schema
    return Draft202012Validator({"$ref": CONTRACT_URI + schema["$ref"]}, registry=REGISTRY)


@pytest.fixture(scope="module")
def app_schema() -> dict[str, Any]:
    return make_app(lambda: fixture_dir(FIXTURE)).openapi()


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with serve(lambda: fixture_dir(FIXTURE)) as ready:
        wait_until(lambda: ready.get("/health").status_code == 200)
        yield ready


def test_the_app_serves_exactly_the_contract_operations(app_schema: dict[str, Any]) -> None:
    served = {(path, method) for path, item in app_schema["paths"].items() for method in item}
    assert served == set(contract_operations())


def test_each_operation_documents_the_contract_statuses(app_schema: dict[str, Any]) -> None:
    for (path, method), operation in contract_operations().items():
        documented = set(app_schema["paths"][path][method]["responses"])
        assert documented == set(operation["responses"]), (path, method)


def check(response: httpx2.Response, path: str, method: str, status: int) -> None:
    """The response has `status` and a body valid under the contract's schema for it."""
    assert response.status_code == status, response.text
    errors = list(validator_for(path, method, response.status_code).iter_errors(response.json()))
    assert not errors, (path, method, response.status_code, [e.message for e in errors])


def test_successful_responses_match_the_contract(client: TestClient) -> None:
    check(client.get("/health"), "/health", "get", 200)
    check(client.get("/v1/models", headers=AUTH), "/v1/models", "get", 200)
    for encoding in ("float", "base64"):
        body = {"input": ["a", "b"], "encoding_format": encoding, "dimensions": 32, "input_type": "query"}
        check(client.post("/v1/embeddings", json=body, headers=AUTH), "/v1/embeddings", "post", 200)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"input": ""}),
        (400, {"input": [1, 2]}),
        (400, {"input": "a", "dimensions": 100}),
        (401, None),
        (413, {"input": ["a"] * 9}),
        (422, {"input": 5}),
    ],
)
def test_error_responses_match_the_contract(
    client: TestClient, status: int, body: dict[str, Any] | None
) -> None:
    headers = AUTH if body is not None else {}
    response = client.post("/v1/embeddings", json=body or {"input": "a"}, headers=headers)

    check(response, "/v1/embeddings", "post", status)


def test_a_non_finite_result_matches_the_contract(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def nan_forward(self: Any, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return np.full((*input_ids.shape, 64), np.nan, dtype=np.float32)

    monkeypatch.setattr(AutoBackend, "forward", nan_forward)
    response = client.post("/v1/embeddings", json={"input": "a"}, headers=AUTH)

    check(response, "/v1/embeddings", "post", 500)


def test_responses_while_loading_and_after_a_failed_load_match_the_contract(tmp_path: Path) -> None:
    release = threading.Event()

    def slow_model_dir() -> Path:
        release.wait()
        return tmp_path

    with serve(slow_model_dir) as loading:
        try:
            for status in ("loading", "failed"):
                health = loading.get("/health")
                assert health.json()["status"] == status
                check(health, "/health", "get", 503)
                check(loading.get("/v1/models", headers=AUTH), "/v1/models", "get", 503)
                embedding = loading.post("/v1/embeddings", json={"input": "a"}, headers=AUTH)
                check(embedding, "/v1/embeddings", "post", 503)
                release.set()
                wait_until(lambda: loading.get("/health").json()["status"] != "loading")
        finally:
            release.set()


REQUESTS: list[Any] = [
    {"input": "a"},
    {"input": ["a", "b"], "model": "any", "user": "u", "encoding_format": "base64"},
    {"input": "a", "input_type": "query", "normalize": False, "truncate": False, "dimensions": 32},
    {"input": "a", "unknown_field": 1},
    {},
    {"input": ""},
    {"input": []},
    {"input": ["a", ""]},
    {"input": [1, 2]},
    {"input": [[1], [2]]},
    {"input": 3},
    {"input": None},
    {"input": "a", "encoding_format": "hex"},
    {"input": "a", "input_type": "passage"},
    {"input": "a", "normalize": "yes"},
    {"input": "a", "dimensions": "256"},
    {"input": "a", "dimensions": 0},
    ["a"],
]


@pytest.mark.parametrize("body", REQUESTS, ids=[json.dumps(body) for body in REQUESTS])
def test_a_request_is_accepted_exactly_when_the_contract_accepts_it(client: TestClient, body: Any) -> None:
    schema = Draft202012Validator(
        {"$ref": f"{CONTRACT_URI}#/components/schemas/EmbeddingRequest"}, registry=REGISTRY
    )
    response = client.post("/v1/embeddings", json=body, headers=AUTH)

    assert response.status_code in (200, 400, 422), response.text
    assert (response.status_code == 200) == schema.is_valid(body), response.text
