"""Server logging: today's text lines, or one JSON object per line (``serve --log-format json``).

A JSON line always has ``ts`` (UTC, ISO 8601 with milliseconds), ``level``,
``logger`` and ``message``; a line logged while a request is served also has its
``request_id``. The access log (logger ``license_server.access``, JSON mode only)
adds ``method``, ``route`` (the route's name, never the raw path or query),
``status``, ``duration_ms``, ``dialect`` and ``error_code``.

Secrets never reach a log: no code path logs tokens, keys or challenge bodies,
and the access log records route names and codes only.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")
ACCESS_LOGGER = "license_server.access"
ACCESS_FIELDS = ("method", "route", "status", "duration_ms", "dialect", "error_code")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
access_log = logging.getLogger(ACCESS_LOGGER)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id is not None:
            doc["request_id"] = request_id
        for name in ACCESS_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def configure(level: str, log_format: str = "text") -> None:
    """Set up the root logger once, for ``serve`` (replaces any handler a library installed)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
