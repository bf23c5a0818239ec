"""What happens around every request: its id, the bearer token check, the log line, the last-resort 500."""

from __future__ import annotations

import hmac
import re
import time
import uuid

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import InternalError, Unauthorized, error_response
from .logs import log, request_id

UNAUTHENTICATED_PATHS = frozenset({"/health"})
"""Readiness is polled before the client has anything to prove; it reveals no data."""

_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")


class RequestContext:
    """Pure ASGI, and inside Starlette's error middleware, so that a 500 still gets the OpenAI shape,
    the request id header and its log line."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self._expected = None if token is None else f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get("x-request-id", "")
        rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        context = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            if self._authorized(scope["path"], headers):
                await self.app(scope, receive, send_with_id)
            else:
                reason = Unauthorized(
                    "this endpoint needs the header Authorization: Bearer <AKIDB_INFERENCE_TOKEN>",
                    code="invalid_token",
                )
                await error_response(reason)(scope, receive, send_with_id)
        except Exception as error:
            log.error("unhandled error", exc_info=error)
            if not response_started:
                bug = InternalError(
                    f"internal error ({type(error).__name__}); see the log", code="internal_error"
                )
                await error_response(bug)(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id.reset(context)

    def _authorized(self, path: str, headers: Headers) -> bool:
        if self._expected is None or path in UNAUTHENTICATED_PATHS:
            return True
        given = headers.get("authorization", "").encode()
        return hmac.compare_digest(given, self._expected)
