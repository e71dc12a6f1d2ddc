"""How aiohttp's HTTP parser and its error logging are configured for our server.

* Header limits sit above our own: an entitlement token up to
  :data:`license_server.tokens.MAX_TOKEN_BYTES` must reach the token verifier,
  which answers ``TOKEN_MALFORMED`` with our error code and ``X-DRM-Mode``,
  instead of aiohttp's plain 400.
* A request that does not parse as HTTP (bad header, bad chunking) is the
  client's fault: it is logged as one WARNING line, without a traceback, so no
  client can flood the log. Other errors keep aiohttp's full report.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from license_server.tokens import MAX_TOKEN_BYTES

MAX_HEADER_FIELD = MAX_TOKEN_BYTES + 8192  # room for the token header's name and generous other headers
MAX_HEADER_LINE = MAX_HEADER_FIELD


class BadRequestLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, with client parse errors reduced to one WARNING line."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else None
        if isinstance(error, HttpProcessingError):
            detail = " ".join(str(error.message or error).split())[:200]
            self.logger.warning(f"{msg}: malformed HTTP request ({error.code}): %s", *args, detail)
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kwargs)


def handler_args() -> dict[str, Any]:
    """Keyword arguments of aiohttp's request handler (``web.Application(handler_args=...)``)."""
    return {"max_field_size": MAX_HEADER_FIELD, "max_line_size": MAX_HEADER_LINE,
            "logger": BadRequestLogger(logging.getLogger("aiohttp.server"), {})}
