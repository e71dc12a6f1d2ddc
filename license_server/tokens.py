"""Entitlement tokens: JWTs from the operator's backend that vouch for a viewer.

Sans-I/O: :class:`TokenVerifier` takes the token text and ``now`` and returns
typed :class:`TokenClaims` or raises :class:`DrmError` with a distinct stable
code per failure. Verification order:

1. size and shape (``TOKEN_MALFORMED``);
2. the header's ``alg`` against the allow-list HS256, RS256, ES256 — ``none``
   and everything else refused (``TOKEN_ALGORITHM_NOT_ALLOWED``);
3. the ``kid`` against the configured JWK set (``TOKEN_KEY_UNKNOWN``), and the
   key's type and declared algorithm against ``alg``, which stops algorithm
   confusion such as an HS256 token "signed" with an RSA public key;
4. the signature (``TOKEN_SIGNATURE_INVALID``);
5. ``exp`` (required), ``nbf`` and ``iat`` against the server clock with a
   small leeway — pyjwt's own time checks are off because they read the wall
   clock; ours take the injected ``now``;
6. ``aud`` and ``iss`` when the server is configured with them;
7. the claims' shape (``TOKEN_CLAIMS_INVALID``).

Single use (``jti``) is enforced by the store, in the grant's transaction.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any, Literal

import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from license_server import jsonsafe
from license_server.clock import parse_duration
from license_server.errors import DrmError, ErrorCode

TOKEN_HEADER = "X-DRM-Token"
MAX_TOKEN_BYTES = 8192
DEFAULT_LEEWAY = 30  # seconds of clock skew tolerated for exp / nbf / iat
ALLOWED_ALGORITHMS: dict[str, str] = {"HS256": "oct", "RS256": "RSA", "ES256": "EC"}
TRACK_NAMES = ("AUDIO", "SD", "HD", "UHD1")
HDCP_NAMES = ("NONE", "V1", "V2", "V2_1", "V2_2", "V2_3")
MAX_DURATION = 10 * 365 * 86400  # seconds; as for cfg= overrides, so every encoder and the store can hold it
MAX_NUMERIC_DATE = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second datetime and SQLite handle


def duration_seconds(value: Any) -> Any:
    """Durations may be whole seconds or strings such as ``30d`` / ``48h``."""
    if isinstance(value, str):
        return parse_duration(value)
    return value


class TrackRule(BaseModel):
    """A per-track requirement: the lowest security level and the HDCP version."""

    model_config = ConfigDict(extra="forbid", strict=True)

    min_level: Literal["L1", "L3"] | None = None
    hdcp: Literal[HDCP_NAMES] | None = None  # type: ignore[valid-type]


class PolicyClaims(BaseModel):
    """The license policy a token grants. Absent values leave the title's rights in place."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "yes" or 1 is not a bool: validated, not coerced

    persistent: bool = Field(False, description="Persistent (offline) licenses are allowed.")
    rental: int | None = Field(None, ge=0, le=MAX_DURATION, description="Storage window, counted from download.")
    playback: int | None = Field(None, ge=0, le=MAX_DURATION, description="Playback window, counted from first play.")
    license: int | None = Field(None, ge=0, le=MAX_DURATION, description="License duration (0 = unlimited).")
    renew: bool | None = None
    renewal_delay: int | None = Field(None, ge=0, le=MAX_DURATION)
    renewal_retry: int | None = Field(None, ge=0, le=MAX_DURATION)
    renewal_recovery: int | None = Field(None, ge=0, le=MAX_DURATION)
    require_attestation: bool | None = Field(
        None, description="true: refuse a challenge without attestation evidence (ATTESTATION_REQUIRED).")
    renewal_server_url: str | None = Field(None, max_length=2048, description="Where renewals go.")
    renew_with_usage: bool | None = None

    _durations = field_validator("rental", "playback", "license", "renewal_delay", "renewal_retry",
                                 "renewal_recovery", mode="before")(duration_seconds)


class TokenClaims(BaseModel):
    """The claims of an entitlement token (registered JWT claims plus ours)."""

    model_config = ConfigDict(extra="ignore", strict=True)  # a wrong type is TOKEN_CLAIMS_INVALID, never coerced

    sub: str = Field(min_length=1, max_length=128, description="The account (user) id.")
    profile: str | None = Field(None, max_length=128)
    tier: str = Field("standard", min_length=1, max_length=32)
    content: list[str] = Field(min_length=1, max_length=256, description="Content ids the viewer may play.")
    device_id: str | None = Field(None, max_length=128, description="Binds the token to one device.")
    policy: PolicyClaims = PolicyClaims()
    tracks: dict[Literal[TRACK_NAMES], TrackRule] = {}  # type: ignore[valid-type]
    regions: list[str] | None = Field(None, description="Regions the entitlement is valid in (ISO 3166 alpha-2).")
    region: str | None = Field(None, description="The viewer's region, as the backend determined it.")
    device_cap: int | None = Field(None, ge=0, le=1_000_000,
                                   description="Overrides the tier's device cap for this account.")
    jti: str | None = Field(None, min_length=1, max_length=128, description="Present: the token is single-use.")
    max_streams: int | None = Field(None, ge=0, le=1000, description="Overrides the tier's concurrent-stream limit.")
    stream_mode: Literal["block_new", "evict_oldest"] | None = Field(
        None, description="Over the stream limit: refuse the new stream or end the oldest.")
    exp: int = Field(ge=0, le=MAX_NUMERIC_DATE)
    nbf: int | None = Field(None, ge=0, le=MAX_NUMERIC_DATE)
    iat: int | None = Field(None, ge=0, le=MAX_NUMERIC_DATE)
    iss: str | None = None
    aud: str | list[str] | None = None


class TokenKeys:
    """The operator's verification keys: a JWK set, looked up by ``kid``."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self._keys: dict[str, jwt.PyJWK] = {}
        for entry in jwks.get("keys", []):
            kid = entry.get("kid")
            if not kid or entry.get("kty") not in ALLOWED_ALGORITHMS.values():
                continue
            algorithm = entry.get("alg") or next(a for a, kty in ALLOWED_ALGORITHMS.items() if kty == entry["kty"])
            if algorithm not in ALLOWED_ALGORITHMS:
                continue
            self._keys[kid] = jwt.PyJWK(entry, algorithm=algorithm)

    @classmethod
    def from_file(cls, path: Path) -> TokenKeys:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    @property
    def kids(self) -> list[str]:
        return sorted(self._keys)

    def get(self, kid: str) -> jwt.PyJWK | None:
        return self._keys.get(kid)


class TokenVerifier:
    """Verifies entitlement tokens against the operator keys and the server clock."""

    def __init__(self, keys: TokenKeys, *, audience: str | None = None, issuer: str | None = None,
                 leeway: int = DEFAULT_LEEWAY) -> None:
        self.keys = keys
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway

    def verify(self, token: str, now: int) -> TokenClaims:
        if not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            raise DrmError(ErrorCode.TOKEN_MALFORMED, "the token is not a compact JWS (header.payload.signature)")
        header = _header(token)
        key = self._key_for(header)
        try:
            payload = jwt.decode(token, key.key, algorithms=[header["alg"]], options={
                "verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                "verify_aud": False, "verify_iss": False, "verify_sub": False, "verify_jti": False,
            })
        except jwt.InvalidSignatureError as exc:
            raise DrmError(ErrorCode.TOKEN_SIGNATURE_INVALID, "the token signature does not verify") from exc
        except jwt.PyJWTError as exc:
            raise DrmError(ErrorCode.TOKEN_MALFORMED, f"the token does not decode: {exc}") from exc
        self._check_times(payload, now)
        self._check_audience_and_issuer(payload)
        try:
            return TokenClaims.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise DrmError(ErrorCode.TOKEN_CLAIMS_INVALID, f"claim {where}: {first['msg']}") from exc

    def _key_for(self, header: dict[str, Any]) -> jwt.PyJWK:
        algorithm = header.get("alg")
        if not isinstance(algorithm, (str, type(None))) or not isinstance(header.get("kid"), (str, type(None))):
            raise DrmError(ErrorCode.TOKEN_MALFORMED, "the token header's alg and kid must be strings")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise DrmError(ErrorCode.TOKEN_ALGORITHM_NOT_ALLOWED,
                           f"algorithm {algorithm!r} is not allowed (HS256, RS256, ES256)")
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise DrmError(ErrorCode.TOKEN_KEY_UNKNOWN,
                           "the token names no kid" if kid is None else f"unknown kid {str(kid)[:64]!r}")
        if key.key_type != ALLOWED_ALGORITHMS[algorithm] or key.algorithm_name != algorithm:
            raise DrmError(ErrorCode.TOKEN_ALGORITHM_NOT_ALLOWED,
                           f"key {kid!r} is for {key.algorithm_name}, the token says {algorithm}")
        return key

    def _check_times(self, payload: dict[str, Any], now: int) -> None:
        for claim in ("exp", "nbf", "iat"):
            if claim in payload and (not isinstance(payload[claim], int) or isinstance(payload[claim], bool)):
                raise DrmError(ErrorCode.TOKEN_CLAIMS_INVALID, f"claim {claim} must be an integer NumericDate")
        if "exp" not in payload:
            raise DrmError(ErrorCode.TOKEN_CLAIMS_INVALID, "claim exp is required")
        if payload["exp"] <= now - self.leeway:
            raise DrmError(ErrorCode.TOKEN_EXPIRED, f"the token expired {now - payload['exp']} s ago")
        if "nbf" in payload and payload["nbf"] > now + self.leeway:
            raise DrmError(ErrorCode.TOKEN_NOT_YET_VALID, f"the token is valid in {payload['nbf'] - now} s (nbf)")
        if "iat" in payload and payload["iat"] > now + self.leeway:
            raise DrmError(ErrorCode.TOKEN_NOT_YET_VALID, "the token was issued in the future (iat)")

    def _check_audience_and_issuer(self, payload: dict[str, Any]) -> None:
        if self.audience is not None:
            audience = payload.get("aud")
            audiences = audience if isinstance(audience, list) else [audience]
            if self.audience not in audiences:
                raise DrmError(ErrorCode.TOKEN_AUDIENCE_INVALID, f"the token is not for audience {self.audience!r}")
        if self.issuer is not None and payload.get("iss") != self.issuer:
            raise DrmError(ErrorCode.TOKEN_ISSUER_INVALID, f"the token was not issued by {self.issuer!r}")


def _header(token: str) -> dict[str, Any]:
    """The unverified JOSE header, parsed with the bounded JSON loader (depth and size limits)."""
    segment = token.split(".", 1)[0]
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = jsonsafe.loads(raw, max_depth=8)
    except (ValueError, binascii.Error) as exc:
        raise DrmError(ErrorCode.TOKEN_MALFORMED, "the token header is not valid base64url JSON") from exc
    if not isinstance(header, dict):
        raise DrmError(ErrorCode.TOKEN_MALFORMED, "the token header is not a JSON object")
    return header


def mint(claims: dict[str, Any], *, private_jwks: dict[str, Any], kid: str) -> str:
    """Sign ``claims`` with the private JWK ``kid`` (its ``alg`` decides the algorithm)."""
    entry = next((k for k in private_jwks.get("keys", []) if k.get("kid") == kid), None)
    if entry is None:
        raise KeyError(f"no signing key {kid!r}")
    key = jwt.PyJWK(entry, algorithm=entry["alg"])
    return jwt.encode(claims, key.key, algorithm=entry["alg"], headers={"kid": kid})
