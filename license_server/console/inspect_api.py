"""``POST /admin/inspect``: the inspector over HTTP, with "what would the server do?" for challenges.

Body: JSON ``{"data": "<base64, hex or the message text>", "dry_run": true}``, or
the raw message bytes with any non-JSON content type. Guarded like the whole
admin API (bearer token, loopback peers).
"""

from __future__ import annotations

import base64
import binascii
import importlib
import json
from typing import Any

from aiohttp import web

from license_server.core.attestation import TrustAnchor
from license_server.dialects import REGISTRY
from license_server.errors import DrmError, ErrorCode
from license_server.http import KEYRING, read_body
from license_server.inspect import MAX_INPUT_BYTES, Context, decode
from license_server.inspect.dryrun import baseline_overrides, what_would_happen
from license_server.inspect.model import unrecognised
from license_server.namespaces import Namespace, namespace_of

MAX_BODY = 2 * MAX_INPUT_BYTES


def trust_anchors(app: web.Application) -> dict[str, TrustAnchor | None]:
    """Each dialect's trust anchor, as its routes module keeps it (``TRUST`` app key), by dialect name."""
    anchors: dict[str, TrustAnchor | None] = {}
    for dialect in REGISTRY:
        module = importlib.import_module(dialect.routes.partition(":")[0])
        key = getattr(module, "TRUST", None)
        anchors[dialect.name] = app.get(key) if key is not None else None
    return anchors


def context_of(app: web.Application, namespace: Namespace) -> Context:
    from license_server.handlers.media import SIGNING_KEY

    keyring, service = app[KEYRING], namespace.service
    signing = app.get(SIGNING_KEY)
    context = Context.from_keyring(keyring, url_secret=signing.secret() if signing is not None else None,
                                   now=namespace.clock.now())
    return Context(**{**context.__dict__, "token_verifier": service.tokens})


def input_bytes(raw: bytes, content_type: str) -> tuple[bytes, bool]:
    """The message bytes and whether a dry run is wanted."""
    if content_type != "application/json":
        return raw, True
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DrmError(ErrorCode.ADMIN_REQUEST_INVALID, "the body is not JSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), str):
        raise DrmError(ErrorCode.ADMIN_REQUEST_INVALID, 'send {"data": "<base64, hex or text>"}')
    dry_run = doc.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise DrmError(ErrorCode.ADMIN_REQUEST_INVALID, "dry_run must be a boolean")
    if doc.get("encoding") == "base64":
        try:
            return base64.b64decode(doc["data"], validate=False), dry_run
        except (binascii.Error, ValueError) as exc:
            raise DrmError(ErrorCode.ADMIN_REQUEST_INVALID, "data is not base64") from exc
    return doc["data"].encode("utf-8"), dry_run


def inspect_document(app: web.Application, namespace: Namespace, data: bytes, *,
                     dry_run: bool = True) -> dict[str, Any]:
    """The inspector's document, plus ``server_would`` for a challenge when ``dry_run``."""
    now = namespace.clock.now()
    encoding, found = decode(data, context_of(app, namespace), now=now)
    if found is None:
        return unrecognised(encoding)
    document = found.as_json(encoding)
    if dry_run and found.challenge is not None:
        document["server_would"] = what_would_happen(
            found.challenge, namespace.service, trust=trust_anchors(app).get(found.dialect or ""),
            overrides=baseline_overrides(found, now), now=now)
    return document


async def inspect_handler(request: web.Request) -> web.Response:
    raw = await read_body(request, MAX_BODY)
    if not raw.strip():
        raise DrmError(ErrorCode.ADMIN_REQUEST_INVALID, "nothing to inspect: the body is empty")
    data, dry_run = input_bytes(raw, request.content_type)
    return web.json_response(inspect_document(request.app, namespace_of(request), data, dry_run=dry_run),
                             headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    app.router.add_post("/admin/inspect", inspect_handler, name="admin.inspect")
