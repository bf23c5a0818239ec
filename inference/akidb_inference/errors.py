"""Every way a request can fail, and the one table from failure to HTTP status and OpenAI error type.

Handlers raise an `ApiError` subclass with a message that names the field and the limit; the app's
exception handlers turn it into `{error: {message, type, code, param}}` with the status from `ERROR_TABLE`.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class ApiError(Exception):
    """A failure the client sees. `code` is stable and machine-readable; `param` is the field at fault."""

    def __init__(self, message: str, *, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


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
    InvalidOutput: (500, "server_error"),
    InternalError: (500, "server_error"),
    ModelUnavailable: (503, "server_error"),
}
"""Failure -> (HTTP status, OpenAI error type). The only place a status is decided."""


def error_body(error: ApiError) -> dict[str, Any]:
    _, error_type = ERROR_TABLE[type(error)]
    return {"error": {"message": error.message, "type": error_type, "code": error.code, "param": error.param}}


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    status, _ = ERROR_TABLE[type(error)]
    return JSONResponse(error_body(error), status_code=status, headers=headers)


def body_too_large() -> TooLarge:
    return TooLarge(
        "the request body is over the limit (--max-request-bytes); split the request", code="body_too_large"
    )
