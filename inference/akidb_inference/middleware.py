"""What happens around every request: its id, the bearer token check, the proof of identity on /health,
the body size limit, the log line, and the last-resort 500."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
import uuid

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import InternalError, Unauthorized, body_too_large, error_response
from .logs import log, request_id, stage_ms

UNAUTHENTICATED_PATHS = frozenset({"/health"})
"""Readiness is polled before the client has anything to prove; it reveals no data."""

_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")

CHALLENGE_HEADER = "x-akidb-challenge"
PROOF_HEADER = "x-akidb-proof"
_CHALLENGE = re.compile(r"[0-9a-f]{32,128}")


def identity_proof(token: str, challenge: str) -> str:
    """HMAC-SHA256 of the parent's challenge under the per-launch token: it shows the control plane
    that it is talking to the process it started (which alone was given the token) before it sends
    that process the token or any user text. The token itself never travels in the answer."""
    return hmac.new(token.encode(), challenge.encode(), hashlib.sha256).hexdigest()


class RequestContext:
    """Pure ASGI, and inside Starlette's error middleware, so that a 500 still gets the OpenAI shape,
    the request id header and its log line."""

    def __init__(self, app: ASGIApp, token: str | None, max_request_bytes: int) -> None:
        self.app = app
        self._token = token
        self._expected = None if token is None else f"Bearer {token}".encode()
        self._max_request_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get("x-request-id", "")
        rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        extra_headers = [(b"x-request-id", rid.encode())]
        challenge = headers.get(CHALLENGE_HEADER, "")
        if self._token is not None and _CHALLENGE.fullmatch(challenge):
            proof = identity_proof(self._token, challenge)
            extra_headers.append((PROOF_HEADER.encode(), proof.encode()))
        context = request_id.set(rid)
        stages = stage_ms.set({})
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), *extra_headers]
            await send(message)

        received = 0

        async def receive_within_limit() -> Message:
            # A body without Content-Length (chunked) is counted as it arrives; the HTTPException
            # surfaces through FastAPI's body reading to the app's 413 handler.
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self._max_request_bytes:
                raise HTTPException(413)
            return message

        try:
            if not self._authorized(scope["path"], headers):
                reason = Unauthorized(
                    "this endpoint needs the header Authorization: Bearer <AKIDB_INFERENCE_TOKEN>",
                    code="invalid_token",
                )
                await error_response(reason)(scope, receive, send_with_id)
            elif _declared_length(headers) > self._max_request_bytes:
                await error_response(body_too_large())(scope, receive, send_with_id)
            else:
                await self.app(scope, receive_within_limit, send_with_id)
        except Exception as error:
            log.error("unhandled error", exc_info=error)
            if not response_started:
                bug = InternalError(
                    f"internal error ({type(error).__name__}); see the log", code="internal_error"
                )
                await error_response(bug)(scope, receive, send_with_id)
        finally:
            # The supervisor asks /health every second: a healthy answer is not worth an info line.
            quiet = scope["path"] in UNAUTHENTICATED_PATHS and status < 400
            log.log(
                logging.DEBUG if quiet else logging.INFO,
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    **(stage_ms.get() or {}),
                },
            )
            stage_ms.reset(stages)
            request_id.reset(context)

    def _authorized(self, path: str, headers: Headers) -> bool:
        if self._expected is None or path in UNAUTHENTICATED_PATHS:
            return True
        given = headers.get("authorization", "").encode()
        return hmac.compare_digest(given, self._expected)


def _declared_length(headers: Headers) -> int:
    """Content-Length, or 0 when absent (the server rejects a malformed one before the app runs)."""
    declared = headers.get("content-length", "")
    return int(declared) if declared.isdigit() else 0
