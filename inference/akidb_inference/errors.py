"""Every way a request can fail, and the one table from failure to HTTP status and OpenAI error type.

Handlers raise an `ApiError` subclass with a message that names the field and the limit; the handlers
installed by `add_error_handlers` turn it, and the framework's own failures (validation, no route, an
unreadable body), into `{error: {message, type, code, param}}` with the status from `ERROR_TABLE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response


class ApiError(Exception):
    """A failure the client sees. `code` is stable and machine-readable; `param` is the field at fault."""

    def __init__(
        self, message: str, *, code: str, param: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers
        """Response headers the failure calls for (Allow, Retry-After)."""


class InvalidInput(ApiError):
    """Well-formed but unservable: malformed JSON, an empty text, token ids, a dimension the model does
    not allow, an input over the model's token limit with `truncate: false`."""


class Unauthorized(ApiError):
    """The bearer token is missing or wrong."""


class RouteNotFound(ApiError):
    """No route has this path."""


class MethodNotAllowed(ApiError):
    """The path exists but not with this method."""


class TooLarge(ApiError):
    """Too many inputs, too many tokens or too many bytes in one request."""


class Overloaded(ApiError):
    """Too many requests are already waiting for the model."""


class WrongShape(ApiError):
    """Well-formed JSON of the wrong shape or type (a missing field, a number where a string goes), or a
    body not sent as application/json."""


class InvalidOutput(ApiError):
    """The model produced something that must not be returned (NaN, infinity); the reason is logged."""


class InternalError(ApiError):
    """A failure the server did not expect (a bug); the traceback is logged."""


class ModelUnavailable(ApiError):
    """The model is still loading, or its load failed."""


ERROR_TABLE: dict[type[ApiError], tuple[int, str]] = {
    InvalidInput: (400, "invalid_request_error"),
    Unauthorized: (401, "authentication_error"),
    RouteNotFound: (404, "not_found_error"),
    MethodNotAllowed: (405, "invalid_request_error"),
    TooLarge: (413, "invalid_request_error"),
    WrongShape: (422, "invalid_request_error"),
    Overloaded: (429, "rate_limit_error"),
    InvalidOutput: (500, "server_error"),
    InternalError: (500, "server_error"),
    ModelUnavailable: (503, "server_error"),
}
"""Failure -> (HTTP status, OpenAI error type). The only place a status is decided."""


def error_body(error: ApiError) -> dict[str, Any]:
    _, error_type = ERROR_TABLE[type(error)]
    return {"error": {"message": error.message, "type": error_type, "code": error.code, "param": error.param}}


def error_response(error: ApiError) -> JSONResponse:
    status, _ = ERROR_TABLE[type(error)]
    return JSONResponse(error_body(error), status_code=status, headers=error.headers)


def body_too_large() -> TooLarge:
    return TooLarge(
        "the request body is over the limit (--max-request-bytes); split the request", code="body_too_large"
    )


def add_error_handlers(app: FastAPI) -> None:
    """Every failure the app raises or the framework detects answers in the OpenAI shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)


async def _api_error(_: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error_response(error)


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's own failures: no route, wrong method, an unreadable or oversized body."""
    assert isinstance(error, HTTPException)
    where = f"{request.method} {request.url.path}"
    if error.status_code == 404:
        routes = ", ".join(
            f"{method} {route.path}"
            for route in request.app.routes
            if isinstance(route, APIRoute)
            for method in sorted(route.methods or ())
        )
        return error_response(
            RouteNotFound(f"there is no route {where}; the routes are {routes}", code="not_found")
        )
    if error.status_code == 405:
        allowed = (error.headers or {}).get("Allow", "")
        reason = MethodNotAllowed(
            f"{where} is not a route; use {allowed} {request.url.path}",
            code="method_not_allowed",
            headers={"Allow": allowed},
        )
        return error_response(reason)
    if error.status_code == 413:
        return error_response(body_too_large())
    if error.status_code == 400:
        return error_response(InvalidInput(f"the body cannot be read: {error.detail}", code="invalid_body"))
    return error_response(InternalError(f"{error.detail}", code="internal_error"))


_EMPTY = frozenset({"empty_input", "string_too_short", "too_short"})


async def _validation_error(_: Request, error: Exception) -> Response:
    """The first problem, OpenAI-shaped: 400 for malformed JSON, empty texts and token ids, 422 for a
    wrong shape or type. `param` is the field path, e.g. `input[3]`."""
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0]
    kind, loc = first["type"], tuple(first["loc"])
    param = field_path(loc)
    reason: ApiError
    if kind == "json_invalid":
        context = first.get("ctx") or {}
        reason = InvalidInput(
            f"the body is not valid JSON: {context.get('error', 'decode error')} at character {loc[-1]}",
            code="invalid_json",
        )
    elif kind in _EMPTY and param is not None and param.startswith("input"):
        reason = InvalidInput(
            f"{param} is empty; every input must be a non-empty string", code="empty_input", param=param
        )
    elif kind == "token_ids":
        reason = InvalidInput(first["msg"], code="token_ids_not_supported", param=param)
    elif param is None:
        reason = WrongShape(
            "the body must be a JSON object sent with Content-Type: application/json", code="invalid_body"
        )
    elif kind == "missing":
        reason = WrongShape(f"{param} is required", code="missing_field", param=param)
    else:
        reason = WrongShape(f"{param} is invalid: {first['msg']}", code=kind, param=param)
    return error_response(reason)


def field_path(loc: Sequence[int | str]) -> str | None:
    """("body", "input", 3) -> "input[3]"; the body itself -> None."""
    path = ""
    for part in loc[1:]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or None
