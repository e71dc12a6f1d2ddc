"""Minting entitlement tokens in tests: valid ones with the test keys, and broken ones."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from license_server.tokens import mint
from tests.conftest import KEYS, START

SIGNING_KEYS = json.loads((KEYS / "tokens" / "signing-keys.jwks.json").read_text())


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims at the frozen test time (account alice, premium, demo-movie)."""
    base = {"sub": "alice", "tier": "premium", "content": ["demo-movie"], "iat": START, "exp": START + 600,
            "policy": {"persistent": True}}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def token(kid: str = "test-es256", **overrides: Any) -> str:
    return mint(claims(**overrides), private_jwks=SIGNING_KEYS, kid=kid)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(**overrides: Any) -> str:
    """``alg: none``: a header and payload with an empty signature."""
    header = b64(json.dumps({"alg": "none", "kid": "test-es256", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims(**overrides)).encode())}."


def confused_token() -> str:
    """HS256 "signed" with the RS256 key's public PEM as the HMAC secret: algorithm confusion."""
    rsa = next(k for k in SIGNING_KEYS["keys"] if k["kid"] == "test-rs256")
    public_pem = jwt.PyJWK(rsa, algorithm="RS256").key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64(json.dumps({"alg": "HS256", "kid": "test-rs256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def tampered(value: str) -> str:
    """Change the payload (tier premium -> a forged claim) and keep the old signature."""
    header, payload, signature = value.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["content"] = ["demo-movie", "demo-episode"]
    return f"{header}.{b64(json.dumps(data).encode())}.{signature}"
