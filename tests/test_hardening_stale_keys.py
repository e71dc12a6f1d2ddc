"""Issue 20 side effects: after `keys init --force`, an old device is told why it fails and how to re-provision."""

from __future__ import annotations

import logging

from device_emulator.cdm.widevine import WidevineCdm
from license_server.core.model import LicenseKind
from license_server.protocols.widevine import license_protocol_pb2 as pb


async def test_privacy_request_for_another_service_certificate(client, widevine, make_device, caplog):
    caplog.set_level(logging.WARNING)
    cdm = WidevineCdm(make_device("L1"))
    await widevine.provision_service_certificate(cdm)
    pending = cdm.build_challenge("demo-movie", LicenseKind.TEMPORARY, privacy=True)
    signed = pb.SignedMessage.FromString(pending.body)
    request = pb.LicenseRequest.FromString(signed.msg)
    wrapped = bytearray(request.encrypted_client_id.encrypted_privacy_key)
    wrapped[10] ^= 0xFF  # as if wrapped for the service key of a keyring that no longer exists
    request.encrypted_client_id.encrypted_privacy_key = bytes(wrapped)
    signed.msg = request.SerializeToString()
    status, headers, body = await widevine.post(signed.SerializeToString())
    assert status == 400 and headers["X-DRM-Error-Code"] == "MALFORMED_CHALLENGE"
    text = body.decode("latin-1")
    assert "keys init --force" in text and "device-emulator create" in text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "re-provisioned" in r.getMessage()]
    assert len(warnings) == 1
