"""Key material for entitlement tokens, as JSON Web Keys (RFC 7517).

Named operations:

* :func:`generate_token_keys` — one key per allowed algorithm (HS256 shared
  secret, RS256 RSA-2048, ES256 P-256), returned twice: the private JWK set an
  operator's backend signs with, and the JWK set the license server verifies
  with (public keys only, plus the HS256 secret, which is symmetric by nature).

pyjwt does the JWK encoding; this module only creates the keys, so the hazmat
import stays inside the crypto package.
"""

from __future__ import annotations

import base64
import json
import secrets

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

PUBLIC_MEMBERS = {"RSA": ("kty", "n", "e"), "EC": ("kty", "crv", "x", "y")}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _described(jwk: dict, *, kid: str, alg: str) -> dict:
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


def generate_token_keys(prefix: str = "test") -> tuple[dict, dict]:
    """(private JWK set, verification JWK set) with kids ``<prefix>-hs256`` etc."""
    hs = _described({"kty": "oct", "k": _b64url(secrets.token_bytes(32))}, kid=f"{prefix}-hs256", alg="HS256")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rs = _described(json.loads(RSAAlgorithm.to_jwk(rsa_key)), kid=f"{prefix}-rs256", alg="RS256")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    es = _described(json.loads(ECAlgorithm.to_jwk(ec_key)), kid=f"{prefix}-es256", alg="ES256")
    private = {"keys": [hs, rs, es]}
    public = {"keys": [hs] + [_public(jwk) for jwk in (rs, es)]}
    return private, public


def _public(jwk: dict) -> dict:
    members = PUBLIC_MEMBERS[jwk["kty"]]
    return {**{name: jwk[name] for name in members}, "kid": jwk["kid"], "alg": jwk["alg"], "use": "sig"}
