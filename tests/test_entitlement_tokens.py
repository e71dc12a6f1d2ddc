"""Entitlement tokens: verification units, and every refusal over real HTTP in strict mode."""

from __future__ import annotations

import json

import pytest

from device_emulator.cdm.widevine import CdmError
from license_server.core.model import LicenseKind, Track
from license_server.errors import ERROR_CODE_HEADER, DrmError, ErrorCode
from license_server.settings import Settings
from license_server.tokens import TokenKeys, TokenVerifier
from tests.conftest import KEYS, START, tracks
from tests.tokens_support import claims, confused_token, tampered, token, unsigned_token

VERIFIER = TokenVerifier(TokenKeys.from_file(KEYS / "tokens" / "jwks.json"), leeway=30)


def refused_with(value: str, code: ErrorCode, verifier: TokenVerifier = VERIFIER, now: int = START) -> None:
    with pytest.raises(DrmError) as raised:
        verifier.verify(value, now)
    assert raised.value.code is code, raised.value.message


# ------------------------------------------------------------------ units


@pytest.mark.parametrize("kid", ["test-hs256", "test-rs256", "test-es256"])
def test_each_allowed_algorithm_verifies(kid: str) -> None:
    verified = VERIFIER.verify(token(kid, region="de"), START)
    assert verified.sub == "alice" and verified.content == ["demo-movie"] and verified.region == "de"


@pytest.mark.parametrize("value, code", [
    ("", ErrorCode.TOKEN_MALFORMED),
    ("not-a-jwt", ErrorCode.TOKEN_MALFORMED),
    ("a.b.c", ErrorCode.TOKEN_MALFORMED),
    ("x" * 9000 + ".a.b", ErrorCode.TOKEN_MALFORMED),
])
def test_malformed_tokens(value: str, code: ErrorCode) -> None:
    refused_with(value, code)


def test_alg_none_is_refused() -> None:
    refused_with(unsigned_token(), ErrorCode.TOKEN_ALGORITHM_NOT_ALLOWED)


def test_hs_rs_confusion_is_refused() -> None:
    """An HS256 token whose "secret" is the RSA public key never reaches signature checking."""
    refused_with(confused_token(), ErrorCode.TOKEN_ALGORITHM_NOT_ALLOWED)


def test_unknown_and_missing_kid() -> None:
    refused_with(token().replace(token().split(".")[0], token().split(".")[0]), ErrorCode.TOKEN_KEY_UNKNOWN,
                 TokenVerifier(TokenKeys({"keys": []})))
    import jwt as pyjwt

    no_kid = pyjwt.encode(claims(), "x" * 32, algorithm="HS256")
    refused_with(no_kid, ErrorCode.TOKEN_KEY_UNKNOWN)


def test_wrong_signature_is_refused() -> None:
    refused_with(tampered(token()), ErrorCode.TOKEN_SIGNATURE_INVALID)
    refused_with(tampered(token("test-hs256")), ErrorCode.TOKEN_SIGNATURE_INVALID)


def test_time_claims_against_the_injected_clock_with_leeway() -> None:
    refused_with(token(exp=START - 31), ErrorCode.TOKEN_EXPIRED)
    VERIFIER.verify(token(exp=START - 29), START)  # within the leeway
    refused_with(token(nbf=START + 31), ErrorCode.TOKEN_NOT_YET_VALID)
    refused_with(token(iat=START + 3600), ErrorCode.TOKEN_NOT_YET_VALID)
    VERIFIER.verify(token(exp=START + 10), START)
    refused_with(token(exp=START + 10), ErrorCode.TOKEN_EXPIRED, now=START + 100)  # the clock moved


def test_audience_and_issuer_when_configured() -> None:
    strict = TokenVerifier(VERIFIER.keys, audience="license.example", issuer="backend.example")
    strict.verify(token(aud="license.example", iss="backend.example"), START)
    strict.verify(token(aud=["other", "license.example"], iss="backend.example"), START)
    refused_with(token(aud="elsewhere", iss="backend.example"), ErrorCode.TOKEN_AUDIENCE_INVALID, strict)
    refused_with(token(aud="license.example", iss="mallory"), ErrorCode.TOKEN_ISSUER_INVALID, strict)
    VERIFIER.verify(token(aud="anything"), START)  # unchecked when not configured


@pytest.mark.parametrize("bad", [
    {"sub": None}, {"content": []}, {"exp": None}, {"exp": "soon"},
    {"policy": {"persistent": True, "rentall": 5}}, {"tracks": {"8K": {"min_level": "L1"}}},
    {"tracks": {"HD": {"min_level": "L2"}}}, {"device_cap": -1},
])
def test_malformed_claims(bad: dict) -> None:
    refused_with(token(**bad), ErrorCode.TOKEN_CLAIMS_INVALID)


# --------------------------------------------------------------- over HTTP


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "server-data", keys_dir=KEYS, test_clock=True, require_token=True)


async def acquire(widevine, device, value: str | None, *, kind=LicenseKind.PERSISTENT, content="demo-movie",
                  query: str = "", region: str | None = None):
    headers = {k: v for k, v in (("X-DRM-Token", value), ("X-DRM-Region", region)) if v}
    from device_emulator.cdm.widevine import WidevineCdm

    cdm = WidevineCdm(device)
    pending = cdm.build_challenge(content, kind, privacy=False)
    response = await widevine.client.post("/widevine/license" + query, data=pending.body, headers=headers)
    body = await response.read()
    try:
        outcome = cdm.process_license(pending, body)
    except CdmError as exc:
        outcome = exc
    return response.status, response.headers, outcome


@pytest.mark.parametrize("make, code", [
    (lambda: None, ErrorCode.TOKEN_REQUIRED),
    (lambda: token(exp=START - 3600), ErrorCode.TOKEN_EXPIRED),
    (lambda: token(nbf=START + 3600), ErrorCode.TOKEN_NOT_YET_VALID),
    (lambda: tampered(token()), ErrorCode.TOKEN_SIGNATURE_INVALID),
    (unsigned_token, ErrorCode.TOKEN_ALGORITHM_NOT_ALLOWED),
    (confused_token, ErrorCode.TOKEN_ALGORITHM_NOT_ALLOWED),
    (lambda: "garbage", ErrorCode.TOKEN_MALFORMED),
    (lambda: token(content=["demo-episode"]), ErrorCode.CONTENT_NOT_ENTITLED),
    (lambda: token(device_id="00" * 16), ErrorCode.TOKEN_DEVICE_MISMATCH),
    (lambda: token(policy={"persistent": False}), ErrorCode.OFFLINE_NOT_ALLOWED),
    (lambda: token(regions=["FR"], region="DE"), ErrorCode.REGION_NOT_ALLOWED),
])
async def test_strict_mode_refusals_have_distinct_codes(widevine, make_device, store, make, code) -> None:
    status, headers, outcome = await acquire(widevine, make_device("L1"), make())
    assert (status, headers[ERROR_CODE_HEADER]) == (code.status, code.value)
    assert headers["X-DRM-Mode"] == "strict"
    assert isinstance(outcome, CdmError)
    assert store.counts()["licenses"] == 0
    assert store.audit_trail(limit=1)[0]["code"] == code.value


async def test_unknown_kid_over_http(widevine, make_device) -> None:
    import jwt as pyjwt

    forged = pyjwt.encode(claims(), "s" * 32, algorithm="HS256", headers={"kid": "someone-else"})
    status, headers, _ = await acquire(widevine, make_device("L1"), forged)
    assert (status, headers[ERROR_CODE_HEADER]) == (401, "TOKEN_KEY_UNKNOWN")


async def test_reused_single_use_token_is_refused(widevine, make_device, store) -> None:
    value = token(jti="order-42")
    device = make_device("L1")
    status, _, first = await acquire(widevine, device, value)
    assert status == 200 and not isinstance(first, CdmError)
    status, headers, _ = await acquire(widevine, make_device("L1"), value)
    assert (status, headers[ERROR_CODE_HEADER]) == (401, "TOKEN_REUSED")
    assert store.licenses()[0].token_jti == "order-42"


async def test_used_token_ids_survive_a_restart(tmp_path, keyring, clock, aiohttp_client, make_device,
                                                settings) -> None:
    from license_server.app import create_app
    from license_server.store import Store
    from tests.conftest import WidevineExchange

    path = tmp_path / "persisted.db"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    value = token(jti="once")
    first = Store.open(path)
    exchange = WidevineExchange(await aiohttp_client(create_app(settings, store=first, keyring=keyring, clock=clock)))
    assert (await acquire(exchange, make_device("L1"), value))[0] == 200
    first.close()
    second = Store.open(path)
    exchange = WidevineExchange(await aiohttp_client(create_app(settings, store=second, keyring=keyring, clock=clock)))
    status, headers, _ = await acquire(exchange, make_device("L1"), value)
    assert (status, headers[ERROR_CODE_HEADER]) == (401, "TOKEN_REUSED")
    second.close()


async def test_a_valid_tokens_policy_shows_up_in_the_license(widevine, make_device, store) -> None:
    value = token(policy={"persistent": True, "rental": "7d", "playback": "6h", "renew": True},
                  tracks={"HD": {"min_level": "L3", "hdcp": "NONE"}}, tier="standard", profile="kids")
    device = make_device("L3", hdcp=0)
    status, headers, loaded = await acquire(widevine, device, value, kind=LicenseKind.TEMPORARY)
    assert status == 200, headers.get(ERROR_CODE_HEADER)
    # the token lowered HD to L3 / no HDCP, so an L3 device without HDCP gets HD too
    assert Track.HD.value in tracks(loaded, device)
    policy = loaded.policy()
    assert (policy["rental_duration"], policy["playback_duration"], policy["can_renew"]) == (7 * 86400, 6 * 3600, True)
    record = store.licenses()[0]
    assert (record.account, record.tier) == ("alice", "standard")


async def test_cfg_overrides_are_refused_in_strict_mode(widevine, make_device) -> None:
    status, headers, _ = await acquire(widevine, make_device("L1"), token(), query="?cfg=(rental:99999999)")
    assert (status, headers[ERROR_CODE_HEADER]) == (400, "INVALID_POLICY_OVERRIDE")


async def test_region_from_the_header_when_the_token_has_none(widevine, make_device) -> None:
    value = token(regions=["DE", "AT"])
    assert (await acquire(widevine, make_device("L1"), value, region="at"))[0] == 200
    status, headers, _ = await acquire(widevine, make_device("L1"), value, region="US")
    assert headers[ERROR_CODE_HEADER] == "REGION_NOT_ALLOWED"
    status, headers, _ = await acquire(widevine, make_device("L1"), value)
    assert headers[ERROR_CODE_HEADER] == "REGION_NOT_ALLOWED"


async def test_clearkey_speaks_tokens_too(client) -> None:
    body = json.dumps({"kids": ["vxbeAT87mSaZ7BqtOwV2Kw"], "type": "temporary"})
    refused = await client.post("/clearkey/license", data=body)
    assert (refused.status, refused.headers[ERROR_CODE_HEADER]) == (401, "TOKEN_REQUIRED")
    granted = await client.post("/clearkey/license", data=body, headers={"X-DRM-Token": token()})
    assert granted.status == 200 and (await granted.json())["keys"]
    bound = await client.post("/clearkey/license", data=body, headers={"X-DRM-Token": token(device_id="ab" * 8)})
    assert bound.headers[ERROR_CODE_HEADER] == "TOKEN_DEVICE_MISMATCH"  # no identity to bind to
    expired = await client.post("/clearkey/license", data=body, headers={"X-DRM-Token": token(exp=START - 3600)})
    assert (expired.status, expired.headers[ERROR_CODE_HEADER]) == (401, "TOKEN_EXPIRED")
    assert expired.headers["Access-Control-Allow-Origin"] == "*"  # browsers can read the refusal
    assert (await expired.json())["error"]["code"] == "TOKEN_EXPIRED"


async def test_development_mode_says_so_on_every_response(aiohttp_client, tmp_path, store, keyring, clock) -> None:
    from license_server.app import create_app

    settings = Settings(data_dir=tmp_path / "dev", keys_dir=KEYS)
    client = await aiohttp_client(create_app(settings, store=store, keyring=keyring, clock=clock))
    for response in (await client.get("/healthz"), await client.post("/widevine/license", data=b"junk")):
        assert response.headers["X-DRM-Mode"] == "development"
    assert (await (await client.get("/healthz")).json())["mode"] == "development"


def test_renewal_through_the_cli_needs_the_accounts_token(server_process, tmp_path) -> None:
    """Strict mode end to end: acquire and renew with --token; no token or another account's is refused."""
    from tests.conftest import cli_json, run_cli

    server = server_process("--require-token")

    def issue(account: str) -> str:
        result = run_cli("token", "issue", "--account", account, "--content", "demo-movie", "--persistent", "--renew",
                         "--server", server.url, module="license_server.cli")
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    phone = tmp_path / "phone"
    cli_json("create", str(phone), "--json")
    carol = issue("carol")
    acquired = cli_json("acquire", str(phone), "--server", server.url, "--content", "demo-movie", "--type",
                        "persistent", "--token", carol, "--json")
    assert acquired["status"] == "granted"
    renew = ["renew", str(phone), "--content", "demo-movie", "--server", server.url, "--json"]
    assert cli_json(*renew, expect=3)["error"]["code"] == "TOKEN_REQUIRED"
    assert cli_json(*renew, "--token", issue("mallory"), expect=3)["error"]["code"] == "CONTENT_NOT_ENTITLED"
    renewed = cli_json(*renew, "--token", carol)
    assert renewed["applied"] is True and renewed["version"] == 2
