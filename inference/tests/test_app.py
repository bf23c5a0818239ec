"""The HTTP API in-process (FastAPI's TestClient) on a real test checkpoint: every error path with its
status and body, the model states, and what a successful answer holds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from akidb_inference.app import create_app
from akidb_inference.engine import Embedder
from akidb_inference.settings import Settings
from akidb_inference.worker import ModelWorker

from .conftest import AutoBackend
from .fixtures import fixture_dir, load_reference
from .inprocess import AUTH, TOKEN, serve, wait_until

FIXTURE = "qwen3-f32"
LONG_TEXT = load_reference(FIXTURE).texts[-1].text
"""1197 tokens: over the fixture's 512."""


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with serve(lambda: fixture_dir(FIXTURE)) as ready:
        wait_until(lambda: ready.get("/health").status_code == 200)
        yield ready


def error_of(response: httpx2.Response, status: int, code: str, param: str | None = None) -> str:
    """The message of an OpenAI-shaped error, after checking its status, code and param."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert (error["code"], error["param"]) == (code, param)
    assert error["type"] == {
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_error",
    }.get(status, "server_error" if status >= 500 else "invalid_request_error")
    message: str = error["message"]
    return message


def embed(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> httpx2.Response:
    return client.post("/v1/embeddings", json=body, headers={**AUTH, **(headers or {})})


def vectors(response: httpx2.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    rows = [item["embedding"] for item in response.json()["data"]]
    if rows and isinstance(rows[0], str):
        return np.stack([np.frombuffer(base64.b64decode(row), dtype="<f4") for row in rows])
    return np.array(rows, dtype=np.float32)


# --- authentication, request ids, routing -------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/embeddings"), ("GET", "/v1/models"), ("GET", "/x")],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", TOKEN, f"Basic {TOKEN}"])
def test_every_path_but_health_needs_the_bearer_token(
    client: TestClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.request(method, path, json={"input": "hi"}, headers=headers)

    message = error_of(response, 401, "invalid_token")
    assert "Authorization: Bearer <AKIDB_INFERENCE_TOKEN>" in message


def test_health_needs_no_token(client: TestClient) -> None:
    assert client.get("/health").status_code == 200


def test_a_healthy_health_poll_logs_at_debug_only(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="akidb_inference"):
        client.get("/health")
    polls = [r for r in caplog.records if r.getMessage() == "request" and getattr(r, "path", "") == "/health"]
    assert [r.levelno for r in polls] == [logging.DEBUG]


def test_health_proves_the_token_without_revealing_it(client: TestClient) -> None:
    challenge = "0123456789abcdef" * 2
    proof = client.get("/health", headers={"x-akidb-challenge": challenge}).headers["x-akidb-proof"]
    expected = hmac.new(TOKEN.encode(), challenge.encode(), hashlib.sha256).hexdigest()
    assert proof == expected and TOKEN not in proof
    assert "x-akidb-proof" not in client.get("/health").headers
    # A challenge outside [0-9a-f]{32,128} is ignored rather than signed.
    assert "x-akidb-proof" not in client.get("/health", headers={"x-akidb-challenge": "short"}).headers


def test_the_request_id_is_echoed_or_generated(client: TestClient) -> None:
    assert client.get("/health", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get("/health").headers["x-request-id"]
    assert len(generated) == 32 and generated != client.get("/health").headers["x-request-id"]
    too_long = "x" * 129
    assert client.get("/health", headers={"x-request-id": too_long}).headers["x-request-id"] != too_long


def test_each_request_writes_one_log_line_with_its_id(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="akidb_inference")
    client.post("/v1/embeddings", json={"input": "hi"}, headers={**AUTH, "x-request-id": "log-me"})

    [line] = [r.__dict__ for r in caplog.records if r.msg == "request"]
    assert {k: line[k] for k in ("method", "path", "status")} == {
        "method": "POST",
        "path": "/v1/embeddings",
        "status": 200,
    }
    assert line["duration_ms"] >= 0
    # Where the time went: each stage is part of the whole.
    stages = [line["tokenize_ms"], line["queue_ms"], line["model_ms"]]
    assert all(stage >= 0 for stage in stages) and sum(stages) <= line["duration_ms"]


def test_a_request_without_model_work_logs_no_stages(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="akidb_inference")
    client.get("/v1/models", headers=AUTH)
    [line] = [r.__dict__ for r in caplog.records if r.msg == "request"]
    assert not {"tokenize_ms", "queue_ms", "model_ms"} & line.keys()


def test_an_unknown_path_is_404_listing_the_routes(client: TestClient) -> None:
    message = error_of(client.get("/v2/embeddings", headers=AUTH), 404, "not_found")
    assert message == (
        "there is no route GET /v2/embeddings; "
        "the routes are GET /health, GET /v1/models, POST /v1/embeddings"
    )


def test_a_wrong_method_is_405_naming_the_right_one(client: TestClient) -> None:
    response = client.get("/v1/embeddings", headers=AUTH)
    message = error_of(response, 405, "method_not_allowed")
    assert message == "GET /v1/embeddings is not a route; use POST /v1/embeddings"
    assert response.headers["allow"] == "POST"


# --- bodies and fields ---------------------------------------------------------------------------


def test_malformed_json_is_400(client: TestClient) -> None:
    headers = {**AUTH, "content-type": "application/json"}
    response = client.post("/v1/embeddings", content=b'{"input": ["a",', headers=headers)
    message = error_of(response, 400, "invalid_json")
    assert message.startswith("the body is not valid JSON: ")


@pytest.mark.parametrize(
    "content", [b'["not", "an", "object"]', b"", b'"text"'], ids=["array", "empty", "string"]
)
def test_a_body_that_is_not_an_object_is_422(client: TestClient, content: bytes) -> None:
    response = client.post(
        "/v1/embeddings", content=content, headers={**AUTH, "content-type": "application/json"}
    )
    message = error_of(response, 422, "invalid_body")
    assert message == "the body must be a JSON object sent with Content-Type: application/json"


def test_a_body_not_sent_as_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/v1/embeddings", content=b'{"input": "a"}', headers={**AUTH, "content-type": "text/plain"}
    )
    error_of(response, 422, "invalid_body")


def test_a_body_over_the_byte_limit_is_413(client: TestClient) -> None:
    message = error_of(embed(client, {"input": "x" * 30_000}), 413, "body_too_large")
    assert "--max-request-bytes" in message


def test_a_streamed_body_over_the_byte_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"input": "'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"}'

    response = client.post(
        "/v1/embeddings", content=chunks(), headers={**AUTH, "content-type": "application/json"}
    )
    error_of(response, 413, "body_too_large")


def test_a_missing_input_is_422(client: TestClient) -> None:
    assert error_of(embed(client, {"model": "m"}), 422, "missing_field", "input") == "input is required"


@pytest.mark.parametrize(
    ("value", "param", "code"),
    [
        (5, "input", "list_type"),
        (None, "input", "list_type"),
        ({"text": "a"}, "input", "list_type"),
        (["a", 5], "input[1]", "string_type"),
        (["a", ["b"]], "input[1]", "string_type"),
    ],
)
def test_input_of_the_wrong_type_is_422_naming_the_item(
    client: TestClient, value: object, param: str, code: str
) -> None:
    message = error_of(embed(client, {"input": value}), 422, code, param)
    assert message.startswith(f"{param} is invalid: ")


@pytest.mark.parametrize(
    ("value", "param"), [("", "input"), ([], "input"), (["a", ""], "input[1]"), (["", "b"], "input[0]")]
)
def test_empty_input_is_400_naming_the_item(client: TestClient, value: object, param: str) -> None:
    message = error_of(embed(client, {"input": value}), 400, "empty_input", param)
    assert param in message and "empty" in message


@pytest.mark.parametrize("value", [[1, 2, 3], [[1, 2], [3]]], ids=["one", "several"])
def test_token_ids_are_400_saying_only_text_is_accepted(client: TestClient, value: object) -> None:
    response = client.post("/v1/embeddings", json={"input": value}, headers=AUTH)
    message = error_of(response, 400, "token_ids_not_supported", "input")
    assert "accepts only text" in message


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("encoding_format", "hex", "literal_error"),
        ("input_type", "passage", "literal_error"),
        ("dimensions", "32", "int_type"),
        ("dimensions", 32.5, "int_type"),
        ("normalize", "yes", "bool_type"),
        ("truncate", 0, "bool_type"),
        ("model", 7, "string_type"),
    ],
)
def test_an_option_of_the_wrong_type_is_422(client: TestClient, field: str, value: object, code: str) -> None:
    error_of(embed(client, {"input": "a", field: value}), 422, code, field)


@pytest.mark.parametrize("dimensions", [16, 0, -32, 65])
def test_a_dimension_the_model_does_not_allow_is_400_naming_the_allowed_ones(
    client: TestClient, dimensions: int
) -> None:
    message = error_of(
        embed(client, {"input": "a", "dimensions": dimensions}), 400, "dimensions_not_allowed", "dimensions"
    )
    assert message == f"dimensions {dimensions} is not allowed by the model; use one of 32..64"


def test_an_input_over_the_model_limit_without_truncation_is_400(client: TestClient) -> None:
    response = embed(client, {"input": ["short", LONG_TEXT], "truncate": False})

    message = error_of(response, 400, "input_too_long", "input[1]")
    assert message == (
        "input[1] has more tokens than the model's limit of 512; shorten it or send truncate: true"
    )


def test_too_many_inputs_is_413(client: TestClient) -> None:
    message = error_of(embed(client, {"input": ["a"] * 9}), 413, "too_many_inputs", "input")
    assert message.startswith("input has 9 items, more than the limit of 8 per request")


def test_too_many_tokens_is_413(client: TestClient) -> None:
    message = error_of(embed(client, {"input": [LONG_TEXT, LONG_TEXT]}), 413, "too_many_tokens", "input")
    assert message.startswith("input has 1024 tokens, more than the limit of 700 per request")


# --- model states --------------------------------------------------------------------------------


def test_every_text_endpoint_is_503_while_the_model_loads() -> None:
    release = threading.Event()

    def slow_model_dir() -> Path:
        release.wait()
        return fixture_dir(FIXTURE)

    with serve(slow_model_dir) as loading:
        try:
            health = loading.get("/health")
            assert health.status_code == 503
            assert health.json() == {"status": "loading", "reason": "the model is loading"}
            for method, path in [("GET", "/v1/models"), ("POST", "/v1/embeddings")]:
                response = loading.request(method, path, json={"input": "a"}, headers=AUTH)
                assert error_of(response, 503, "model_loading") == "the model is loading"
        finally:
            release.set()
        wait_until(lambda: loading.get("/health").status_code == 200)
        assert embed(loading, {"input": "a"}).status_code == 200


def test_a_failed_load_is_503_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')

    with serve(lambda: tmp_path) as failed:
        wait_until(lambda: failed.get("/health").json()["status"] != "loading")
        health = failed.get("/health")
        message = error_of(embed(failed, {"input": "a"}), 503, "model_failed")

    assert health.status_code == 503
    assert health.json() == {"status": "failed", "reason": message}
    assert message == f"the model failed to load: {tmp_path / 'tokenizer.json'} is missing " + (
        "(a tokenizers-library tokenizer.json is required)"
    )


def test_a_nan_from_the_model_is_a_500_never_a_200(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def nan_forward(self: Any, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return np.full((*input_ids.shape, 64), np.nan, dtype=np.float32)

    monkeypatch.setattr(AutoBackend, "forward", nan_forward)
    caplog.set_level(logging.INFO, logger="akidb_inference")

    response = embed(client, {"input": ["a", "b"]})

    message = error_of(response, 500, "non_finite_embedding", "input[0]")
    assert message.startswith("the model produced an invalid embedding for input 0 (NaN in the model output)")
    [logged] = [r.__dict__ for r in caplog.records if r.msg == "non-finite embedding"]
    assert (logged["levelname"], logged["index"], logged["reason"]) == ("ERROR", 0, "NaN in the model output")


def test_an_unexpected_failure_is_a_shaped_500_with_the_request_id(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Embedder, *args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Embedder, "embed_encoded", broken)

    response = embed(client, {"input": "a"}, headers={"x-request-id": "bug-1"})

    assert error_of(response, 500, "internal_error") == "internal error (RuntimeError); see the log"
    assert response.headers["x-request-id"] == "bug-1"


# --- successful answers --------------------------------------------------------------------------


def test_embeddings_have_the_openai_shape(client: TestClient) -> None:
    response = embed(client, {"input": ["a", "bb"], "model": "ignored/any"})

    body = response.json()
    assert response.status_code == 200
    assert body["object"] == "list" and body["model"] == "test-model"
    assert [(item["object"], item["index"]) for item in body["data"]] == [("embedding", 0), ("embedding", 1)]
    assert np.linalg.norm(vectors(response), axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    # Qwen3 documents have no prompt: the text's one token, then <|endoftext|>.
    assert [(item["tokens"], item["truncated"]) for item in body["data"]] == [(2, False), (2, False)]
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


def test_each_embedding_carries_its_exact_token_count(client: TestClient) -> None:
    entries = [t for t in load_reference(FIXTURE).texts if t.input_type == "query"]
    response = embed(client, {"input": [t.text for t in entries], "input_type": "query"})

    body = response.json()
    assert [item["tokens"] for item in body["data"]] == [t.token_count for t in entries]
    assert [item["truncated"] for item in body["data"]] == [False] * len(entries)
    assert body["usage"]["prompt_tokens"] == sum(t.token_count for t in entries)


def test_a_truncated_input_says_so(client: TestClient) -> None:
    body = embed(client, {"input": ["short", LONG_TEXT]}).json()

    assert [(item["tokens"], item["truncated"]) for item in body["data"]] == [(2, False), (512, True)]
    assert body["usage"]["total_tokens"] == 514


def test_each_text_is_tokenized_once(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    embedder: Embedder = client.app.state.worker.model.embedder  # type: ignore[attr-defined]
    tokenizer = embedder._tokenizer
    calls: list[list[str]] = []

    def recording(texts: list[str], **options: Any) -> Any:
        calls.append(list(texts))
        return tokenizer.encode_batch(texts, **options)

    monkeypatch.setattr(
        embedder, "_tokenizer", type("Recording", (), {"encode_batch": staticmethod(recording)})
    )
    response = embed(client, {"input": ["one", "two words", LONG_TEXT], "truncate": False})
    assert error_of(response, 400, "input_too_long", "input[2]")
    body = embed(client, {"input": ["one", "two words"], "dimensions": 32}).json()

    assert calls == [["one", "two words", LONG_TEXT], ["one", "two words"]]
    assert [item["tokens"] for item in body["data"]] == [2, 3]


def test_one_text_gives_one_embedding_equal_to_its_batched_one(client: TestClient) -> None:
    single = vectors(embed(client, {"input": "bb"}))
    batched = vectors(embed(client, {"input": ["a", "bb"]}))
    assert single.shape == (1, 64)
    assert np.allclose(single[0], batched[1], atol=1e-5)


def test_base64_is_the_little_endian_float32_of_the_float_answer(client: TestClient) -> None:
    as_float = vectors(embed(client, {"input": ["a", "bb"]}))
    as_base64 = vectors(embed(client, {"input": ["a", "bb"], "encoding_format": "base64"}))
    assert np.array_equal(as_float, as_base64)


def test_dimensions_keep_the_leading_components_renormalised(client: TestClient) -> None:
    full = vectors(embed(client, {"input": "a"}))[0]
    short = vectors(embed(client, {"input": "a", "dimensions": 32}))[0]
    assert short.shape == (32,)
    assert np.allclose(short, full[:32] / np.linalg.norm(full[:32]), atol=1e-5)


def test_normalize_false_keeps_the_raw_length(client: TestClient) -> None:
    raw = vectors(embed(client, {"input": "a", "normalize": False}))[0]
    unit = vectors(embed(client, {"input": "a"}))[0]
    assert abs(np.linalg.norm(raw) - 1.0) > 1e-3
    assert np.allclose(raw / np.linalg.norm(raw), unit, atol=1e-5)


def test_queries_get_the_query_prompt(client: TestClient) -> None:
    query = embed(client, {"input": "a", "input_type": "query"})
    document = embed(client, {"input": "a"})
    reference = {t.input_type: t for t in load_reference(FIXTURE).texts if t.text == "a"}
    assert query.json()["usage"]["prompt_tokens"] == reference["query"].token_count
    assert document.json()["usage"]["prompt_tokens"] < reference["query"].token_count
    assert not np.allclose(vectors(query), vectors(document))


def test_long_inputs_are_truncated_by_default(client: TestClient) -> None:
    response = embed(client, {"input": LONG_TEXT})
    assert response.json()["usage"]["prompt_tokens"] == 512


def test_the_model_card(client: TestClient) -> None:
    response = client.get("/v1/models", headers=AUTH)

    assert response.status_code == 200
    [card] = response.json()["data"]
    assert card == {
        **card,
        "id": "test-model",
        "object": "model",
        "owned_by": "akidb",
        "architecture": "qwen3",
        "dimension": 64,
        "matryoshka_dimensions": {"min": 32, "max": 64},
        "max_tokens": 512,
        "pooling": "last_token",
        "quantization": None,
        "dtype": "float32",
    }
    assert card["prompts"]["query"].startswith("Instruct: ") and card["prompts"]["document"] == ""
    assert card["resident_memory_bytes"] > 0 and card["load_seconds"] > 0
    assert client.get("/health").json() == {
        "status": "ready",
        "model": {**card, "resident_memory_bytes": ANY_INT},
    }


class _AnyInt:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, int)


ANY_INT: Any = _AnyInt()


def test_requests_beyond_the_queue_limit_are_429(monkeypatch: pytest.MonkeyPatch) -> None:
    worker = ModelWorker(lambda: fixture_dir(FIXTURE), device="cpu", max_batch_tokens=4096)
    app = create_app(Settings(model="test-model", max_queued_requests=1), worker)
    release = threading.Event()
    compute = Embedder.embed_encoded

    def held(self: Embedder, *args: Any, **kwargs: Any) -> Any:
        release.wait()
        return compute(self, *args, **kwargs)

    with TestClient(app) as queued, ThreadPoolExecutor(max_workers=2) as clients:
        wait_until(lambda: queued.get("/health").status_code == 200)
        monkeypatch.setattr(Embedder, "embed_encoded", held)
        try:
            computing = clients.submit(queued.post, "/v1/embeddings", json={"input": "a"})
            wait_until(lambda: worker.pending == 1)
            waiting = clients.submit(queued.post, "/v1/embeddings", json={"input": "b"})
            wait_until(lambda: worker.pending == 2)

            refused = queued.post("/v1/embeddings", json={"input": "c"})
        finally:
            release.set()
        assert [computing.result().status_code, waiting.result().status_code] == [200, 200]

    message = error_of(refused, 429, "overloaded")
    assert message.startswith("1 requests are already waiting for the model (--max-queued-requests is 1)")
    assert refused.headers["retry-after"] == "1"
