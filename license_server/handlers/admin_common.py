"""Shared plumbing of the admin handlers: model-validated input, model-serialized output."""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from license_server import jsonsafe
from license_server.errors import DrmError, ErrorCode
from license_server.http import read_body

MAX_ADMIN_BODY = 64 * 1024
M = TypeVar("M", bound=BaseModel)


def invalid(exc: ValidationError | ValueError | OverflowError, what: str) -> DrmError:
    """ADMIN_REQUEST_INVALID naming the first problem (field path and pydantic's message)."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        detail = f"{where}: {first['msg']}" if where else first["msg"]
    else:
        detail = str(exc)
    return DrmError(ErrorCode.ADMIN_REQUEST_INVALID, f"bad {what}: {detail}")


async def body_model(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """Validate the JSON body against ``model``; an empty body is ``{}`` when ``optional``."""
    raw = await read_body(request, MAX_ADMIN_BODY)
    if not raw.strip():
        if not optional:
            raise DrmError(ErrorCode.ADMIN_REQUEST_INVALID, "a JSON body is required")
        raw = b"{}"
    try:
        doc = jsonsafe.loads(raw)
    except ValueError as exc:
        raise DrmError(ErrorCode.ADMIN_REQUEST_INVALID, "the body is not JSON") from exc
    if not isinstance(doc, dict):
        raise DrmError(ErrorCode.ADMIN_REQUEST_INVALID, "the body must be a JSON object")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise invalid(exc, "request body") from exc


def query_model(request: web.Request, model: type[M]) -> M:
    """Validate the query string against ``model`` (each parameter at most once)."""
    params: dict[str, Any] = {}
    for name in request.query:
        values = request.query.getall(name)
        if len(values) != 1:
            raise DrmError(ErrorCode.ADMIN_REQUEST_INVALID, f"query parameter {name[:40]!r} given more than once")
        params[name] = values[0]
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise invalid(exc, "query") from exc


def reply(model: BaseModel, status: int = 200) -> web.Response:
    """Serialize a response model (JSON mode: enums as their values)."""
    return web.json_response(model.model_dump(mode="json"), status=status, headers={"Cache-Control": "no-store"})
