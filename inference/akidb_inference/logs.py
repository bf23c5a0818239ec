"""JSON-lines logs on stderr: one object per line with `time`, `level`, `msg`, `request_id`, then fields.

Fields come from `extra=`: `log.info("listening", extra={"port": 8081})`. The request id is taken from a
context variable the HTTP middleware sets, so every line written while serving a request carries it.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
stage_ms: ContextVar[dict[str, float] | None] = ContextVar("stage_ms", default=None)
"""The current request's time per stage (`tokenize_ms`, `queue_ms`, `model_ms`), filled as it runs
and written on its "request" line (as TEI logs tokenization, queue and inference time): where a
request's time goes beyond the model is read from the log, on any machine."""


def record_stage(name: str, seconds: float) -> None:
    """Adds `seconds` to stage `name` of the current request (nothing outside a request)."""
    stages = stage_ms.get()
    if stages is not None:
        stages[name] = round(stages.get(name, 0.0) + seconds * 1000, 2)


"""The id of the request being served, or None outside a request."""

log = logging.getLogger("akidb_inference")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of `msg`
}


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            "request_id": request_id.get(),
        }
        if record.name != log.name:
            line["logger"] = record.name
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: int | str = logging.INFO) -> None:
    """Send every record (this package's, uvicorn's, huggingface_hub's, warnings) to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLinesFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # a library's warnings.warn() would print a non-JSON line
    # uvicorn's access log would duplicate the request line the middleware writes.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "huggingface_hub"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
