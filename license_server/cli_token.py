"""``license-server token issue``: mint an entitlement token with the test signing keys.

For quick manual tests and CI fixtures. The keys are the public test keys in
``keys/tokens/signing-keys.jwks.json``; an operator's real backend signs with
its own keys and the server is pointed at their JWK set (``--token-jwks``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from license_server.clock import parse_duration, wall_clock_now
from license_server.keyring import KeyringError, default_keys_dir, load_keyring
from license_server.tokens import ALLOWED_ALGORITHMS, TRACK_NAMES, TokenClaims, mint


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _track_rules(values: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``--track HD=L1`` or ``--track UHD1=L1:V2_2`` (level, optional HDCP)."""
    rules: dict[str, dict[str, str]] = {}
    for value in values:
        track, _, rule = value.partition("=")
        level, _, hdcp = rule.partition(":")
        if track.upper() not in TRACK_NAMES or level.upper() not in ("L1", "L3"):
            raise click.BadParameter(f"{value!r}: use TRACK=L1|L3[:HDCP], e.g. HD=L1:V1", param_hint="--track")
        rules[track.upper()] = {"min_level": level.upper(), **({"hdcp": hdcp.upper()} if hdcp else {})}
    return rules


def _server_time(server: str) -> int:
    import urllib.request

    try:
        with urllib.request.urlopen(server.rstrip("/") + "/healthz", timeout=10) as reply:
            return int(json.loads(reply.read())["time"])
    except (OSError, ValueError, KeyError) as exc:
        raise click.ClickException(f"cannot read the clock of {server}: {exc}") from exc


@click.group()
def token() -> None:
    """Entitlement tokens (JWTs an operator's backend sends with license requests)."""


@token.command("issue")
@click.option("--account", required=True, help="The account (user) id: the token's `sub`.")
@click.option("--content", "contents", required=True, multiple=True, help="Content id allowed (repeatable).")
@click.option("--tier", default="premium", show_default=True, help="Subscription tier (premium, standard, ads, ...).")
@click.option("--profile", default=None, help="Viewer profile within the account.")
@click.option("--device", "device_id", default=None, help="Bind the token to one device id.")
@click.option("--persistent", is_flag=True, help="Allow persistent (offline) licenses.")
@click.option("--rental", callback=_duration, help="Storage window, e.g. 30d.")
@click.option("--playback", callback=_duration, help="Playback window from first play, e.g. 48h.")
@click.option("--license-duration", callback=_duration, help="License duration, e.g. 1d (0 = unlimited).")
@click.option("--renew/--no-renew", default=None, help="Allow (or forbid) license renewal.")
@click.option("--track", "tracks", multiple=True, help="Per-track requirement TRACK=L1|L3[:HDCP], e.g. HD=L1:V1.")
@click.option("--region", default=None, help="The viewer's region (ISO 3166 alpha-2).")
@click.option("--regions", default=None, help="Comma-separated regions the entitlement is valid in.")
@click.option("--device-cap", type=click.IntRange(0), default=None, help="Override the tier's device cap.")
@click.option("--max-streams", type=click.IntRange(0, 1000), default=None,
              help="Concurrent streams of the account (overrides the tier's max_streams).")
@click.option("--stream-mode", type=click.Choice(["block_new", "evict_oldest"]), default=None,
              help="Over the stream limit: refuse the new stream, or end the oldest [tier default: block_new].")
@click.option("--renewal-delay", callback=_duration, help="Seconds after the license start before renewing, e.g. 60.")
@click.option("--renewal-retry", callback=_duration, help="Seconds between attempts of a failed renewal.")
@click.option("--renewal-recovery", callback=_duration, help="Seconds past expiry a renewal is still accepted.")
@click.option("--renewal-url", default=None, help="Renewal server URL the license names.")
@click.option("--renew-with-usage/--no-renew-with-usage", default=None, help="Renewals carry usage.")
@click.option("--single-use", is_flag=True, help="Add a random jti: the token buys one license.")
@click.option("--ttl", default="10m", show_default=True, callback=_duration, help="Lifetime of the token.")
@click.option("--not-before", "nbf_in", default=None, callback=_duration, help="Valid only after this delay.")
@click.option("--issuer", default=None, help="`iss` claim.")
@click.option("--audience", default=None, help="`aud` claim.")
@click.option("--alg", type=click.Choice(sorted(ALLOWED_ALGORITHMS)), default="ES256", show_default=True,
              help="Signing algorithm (picks the test key test-<alg>).")
@click.option("--now", "now_at", type=int, default=None,
              help="Issue as of this Unix time (for servers on a test clock) [default: now].")
@click.option("--server", default=None, help="Issue as of this server's clock (its /healthz time), e.g. on a "
              "server started with --test-clock.")
@click.option("--keys", "keys_dir", default=None, type=click.Path(path_type=Path), help="keys/ directory.")
@click.option("--claims", "show_claims", is_flag=True, help="Print the claims (JSON) to stderr too.")
def issue(account: str, contents: tuple[str, ...], tier: str, profile: str | None, device_id: str | None,
          persistent: bool, rental: int | None, playback: int | None, license_duration: int | None,
          renew: bool | None, tracks: tuple[str, ...], region: str | None, regions: str | None,
          device_cap: int | None, max_streams: int | None, stream_mode: str | None, renewal_delay: int | None,
          renewal_retry: int | None, renewal_recovery: int | None, renewal_url: str | None,
          renew_with_usage: bool | None, single_use: bool, ttl: int, nbf_in: int | None, issuer: str | None,
          audience: str | None, alg: str, now_at: int | None, server: str | None, keys_dir: Path | None,
          show_claims: bool) -> None:
    """Mint an entitlement token signed with the public TEST keys; prints the token."""
    import secrets

    try:
        keyring = load_keyring(keys_dir or default_keys_dir())
        private = json.loads(keyring.token_signing_keys_path.read_text(encoding="utf-8"))
    except (KeyringError, OSError) as exc:
        click.echo(f"error: no test signing keys ({exc}); run `license-server keys init`", err=True)
        sys.exit(2)
    now = now_at if now_at is not None else _server_time(server) if server else wall_clock_now()
    policy = {"persistent": persistent, "rental": rental, "playback": playback, "license": license_duration,
              "renew": renew, "renewal_delay": renewal_delay, "renewal_retry": renewal_retry,
              "renewal_recovery": renewal_recovery, "renewal_server_url": renewal_url,
              "renew_with_usage": renew_with_usage}
    claims = {
        "sub": account, "tier": tier, "content": list(contents), "iat": now, "exp": now + ttl,
        "policy": {k: v for k, v in policy.items() if v is not None},
        "profile": profile, "device_id": device_id, "tracks": _track_rules(tracks) or None,
        "region": region.upper() if region else None,
        "regions": [r.strip().upper() for r in regions.split(",") if r.strip()] if regions else None,
        "device_cap": device_cap, "max_streams": max_streams, "stream_mode": stream_mode,
        "jti": secrets.token_hex(12) if single_use else None,
        "nbf": now + nbf_in if nbf_in is not None else None, "iss": issuer, "aud": audience,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    TokenClaims.model_validate(claims)  # what we mint, we must accept
    if show_claims:
        click.echo(json.dumps(claims, indent=2), err=True)
    click.echo(mint(claims, private_jwks=private, kid=f"test-{alg.lower()}"))
