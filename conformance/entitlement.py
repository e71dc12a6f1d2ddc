"""Entitlement tokens for the checks, and how a check asks for a license policy.

A target in *development* mode (no token needed) takes policy overrides from the
test server's ``?cfg=(...)`` query. A target in *strict* mode (``--require-token``,
reported as ``"mode": "strict"`` by ``/healthz``) refuses requests without a token
and refuses ``cfg=``; there every license request carries an entitlement token
minted with the keys directory's operator test keys, and the policy a check
needs travels in the token's ``policy`` claim instead.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from conformance.catalog import Context, NotApplicable

TOKEN_HEADER = "X-DRM-Token"
KID = "test-es256"
LIFETIME = 2 * 86400  # long enough for checks that move the server clock by hours


def strict(ctx: Context) -> bool:
    return ctx.capabilities.get("token_mode") == "strict"


def server_now(ctx: Context) -> int:
    from license_server.clock import wall_clock_now

    return wall_clock_now() + int(ctx.capabilities.get("server_clock_offset") or 0)


def signing_keys(ctx: Context) -> dict[str, Any]:
    path = ctx.keyring.directory / "tokens" / "signing-keys.jwks.json"
    if not path.exists():
        raise NotApplicable(f"the keys directory has no operator signing keys ({path.name}) to mint test tokens")
    return json.loads(path.read_text(encoding="utf-8"))


def claims(ctx: Context, **extra: Any) -> dict[str, Any]:
    """Claims of a valid token for a fresh account, entitled to ``demo-movie`` for 10 minutes."""
    now = server_now(ctx)
    return {"sub": f"conformance-{secrets.token_hex(6)}", "content": ["demo-movie"], "iat": now, "exp": now + 600,
            **extra}


def mint(ctx: Context, body: dict[str, Any], kid: str = KID) -> str:
    from license_server.tokens import mint as sign

    return sign(body, private_jwks=signing_keys(ctx), kid=kid)


def entitled(ctx: Context, **policy: Any) -> str:
    """A reusable token for a fresh premium account, every catalog title, persistent allowed plus ``policy``."""
    now = server_now(ctx)
    return mint(ctx, claims(ctx, content=sorted(ctx.keyring.catalog.titles), tier="premium", iat=now,
                            exp=now + LIFETIME, policy={"persistent": True, **policy}))


def default_headers(ctx: Context) -> dict[str, str]:
    """What every license request of a check carries: nothing in development mode, a token in strict mode."""
    return {TOKEN_HEADER: entitled(ctx)} if strict(ctx) else {}


def license_request(ctx: Context, **policy: Any) -> tuple[str, str | None]:
    """(query, token) asking the target for ``policy`` (``rental``, ``playback``, ``license``, ``renew``,
    ``renewal_recovery`` in seconds / booleans): a ``cfg=`` query in development mode, a token in strict mode."""
    if strict(ctx):
        return "", entitled(ctx, **policy)
    if not policy:
        return "", None
    names = {"rental": "rental", "playback": "playback", "license": "license", "renew": "renew",
             "renewal_recovery": "renewrecovery"}
    parts = [f"{names[k]}:{str(v).lower() if isinstance(v, bool) else v}" for k, v in policy.items()]
    return f"?cfg=({','.join(parts)})", None
