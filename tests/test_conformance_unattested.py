"""ATT-011 (an unattested client gets software-level keys only, never persistent) passes against our server
and fails against one that serves unattested clients hardware keys."""

from __future__ import annotations

import asyncio

import pytest

from conformance.catalog import FAILED, NOT_APPLICABLE, PASSED, Context, load_all
from conformance.runner import run_one
from license_server.app import create_app
from license_server.clock import ControlledClock
from license_server.core import attestation
from license_server.core.model import PlatformVerification, SecurityLevel, VerifiedDevice
from tests.conftest import KEYS


@pytest.fixture
async def target(aiohttp_server, settings, store, keyring, tmp_path):
    """Our server on a wall-time clock (the devices' clock), on a real port."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def start() -> Context:
        server = await aiohttp_server(create_app(settings, store=store, keyring=keyring, clock=ControlledClock()))
        return Context(str(server.make_url("")).rstrip("/"), tmp_path, keys_dir=KEYS)

    return start


async def run(ctx: Context, system: str = "widevine"):
    return await asyncio.to_thread(run_one, load_all()["ATT-011"], system, ctx)


async def test_unattested_check_passes_against_our_server(target):
    result = await run(await target())
    assert result.status == PASSED, result.reason
    assert [k["track"] for k in result.evidence["observed"]["keys"]] == ["AUDIO", "SD"]
    assert result.evidence["observed"]["platform_verification"] == "UNVERIFIED"
    assert result.evidence["persistent"]["response"]["error_code"] == "ATTESTATION_REQUIRED"


async def test_unattested_check_fails_against_a_server_that_trusts_the_certificate_level(target, monkeypatch):
    def trusting(challenge, certified, model, claims, rules):  # the bug: no evidence, yet the model's level
        return VerifiedDevice(certified.device_id, certified.system_id, model.name, SecurityLevel.L1,
                              PlatformVerification.HARDWARE_VERIFIED, claims.max_hdcp, certified.public_key)

    monkeypatch.setattr(attestation, "_unattested", trusting)
    result = await run(await target())
    assert result.status == FAILED and "hardware-level keys" in result.reason
    assert {"HD", "UHD1"} <= {k["track"] for k in result.evidence["observed"]["keys"]}


async def test_unattested_check_fails_against_a_server_that_grants_them_persistent_licenses(target, monkeypatch):
    from dataclasses import replace

    from license_server.core import policy

    original = policy.decide

    def lenient(challenge, device, title, *, overrides, **kwargs):  # the bug: software devices may persist
        return original(challenge, device, title, overrides=replace(overrides, persistent_min_level=SecurityLevel.L3),
                        **kwargs)

    monkeypatch.setattr(policy, "check_unattested", lambda kind, overrides: None)
    monkeypatch.setattr(policy, "decide", lenient)
    result = await run(await target())
    assert result.status == FAILED and "persistent" in result.reason


async def test_unattested_check_accepts_a_server_that_requires_attestation(target, settings):
    settings.require_attestation = True
    result = await run(await target())
    assert result.status == PASSED


@pytest.mark.parametrize("system", ["fairplay", "playready", "clearkey"])
async def test_unattested_check_is_not_applicable_elsewhere_with_a_reason(system, tmp_path):
    result = run_one(load_all()["ATT-011"], system, Context("http://127.0.0.1:9", tmp_path, keys_dir=KEYS))
    assert result.status == NOT_APPLICABLE and result.reason
