"""Entitlement JWTs: header and claims, and whether this server's keys verify them."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from license_server.errors import DrmError
from license_server.inspect.model import Context, Decoded, NotMine

JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\Z")


def _segment(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise NotMine("JWT segment is not base64url JSON") from exc
    if not isinstance(doc, dict):
        raise NotMine("JWT segment is not a JSON object")
    return doc


def decode(text: str, context: Context, now: int) -> Decoded:
    if not JWT.match(text):
        raise NotMine("not a compact JWS")
    head, body, signature = text.split(".")
    header, claims = _segment(head), _segment(body)
    if "alg" not in header:
        raise NotMine("JWT header without alg")
    verification: dict[str, Any]
    verifier = context.token_verifier
    if verifier is None and context.token_jwks is not None:
        from license_server.tokens import TokenKeys, TokenVerifier

        verifier = TokenVerifier(TokenKeys(context.token_jwks))
    if verifier is None:
        verification = {"verified": None, "reason": "no entitlement-token keys configured here"}
    else:
        try:
            verifier.verify(text, now)
            verification = {"verified": True, "code": None, "reason": "signature, times and claims check out"}
        except DrmError as exc:
            verification = {"verified": False, "code": exc.code.value, "reason": exc.message}
    fields = {"header": header, "claims": claims, "signature_bytes": len(signature) * 3 // 4,
              "verification": verification}
    sub = claims.get("sub") or claims.get("account") or "?"
    return Decoded("entitlement_token", f"entitlement token (JWT, {header.get('alg')}) for {sub}", fields)
