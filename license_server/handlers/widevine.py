"""``POST /widevine/license``: the Widevine-style exchange, as a thin handler.

One URL takes the ``08 04`` service-certificate request and NEW, RENEWAL and
RELEASE license requests. ``?cfg=(...)`` overrides the policy of NEW requests.
"""

from __future__ import annotations

from aiohttp import web

from license_server import crypto
from license_server.core.model import Grant, RequestKind
from license_server.core.ports import LicenseRecord
from license_server.errors import ERROR_CODE_HEADER, DrmError, ErrorCode
from license_server.http import KEYRING, access_of, error_renderer, read_body
from license_server.namespaces import namespace_of
from license_server.protocols.cfg import parse_overrides
from license_server.protocols.widevine import codec
from license_server.protocols.widevine.trust import WidevineTrust

TRUST = web.AppKey("widevine_trust", WidevineTrust)
CONTENT_TYPE = "application/octet-stream"


@error_renderer("widevine")
def render_error(error: DrmError) -> web.Response:
    return web.Response(
        body=codec.build_error(error),
        status=error.status,
        content_type=CONTENT_TYPE,
        headers={ERROR_CODE_HEADER: error.code.value},
    )


async def license_exchange(request: web.Request) -> web.Response:
    body = await read_body(request, codec.MAX_MESSAGE_BYTES)
    keyring = request.app[KEYRING]
    service = namespace_of(request).service
    if codec.is_service_certificate_request(body):
        return _reply(codec.build_service_certificate(keyring.service_certificate))
    parsed = codec.parse_license_request(body, service_key_pem=keyring.service_key_pem)
    challenge = parsed.challenge
    overrides = parse_overrides(request.query)

    if challenge.kind is RequestKind.NEW:
        def build_new(grant: Grant) -> tuple[bytes, dict[str, str]]:
            assert grant.device is not None
            issued = codec.build_license(grant, parsed, device_public_key=grant.device.public_key)
            return issued.body, {"server_mac": issued.keys.server_mac.hex(), "client_mac": issued.keys.client_mac.hex()}

        return _reply(await service.acquire_async(challenge, trust=request.app[TRUST], overrides=overrides,
                                                  build=build_new, access=access_of(request)))

    keys_of: dict[str, crypto.SessionKeys] = {}

    def verify(record: LicenseRecord) -> None:
        """Renewals and releases are HMAC-signed with the client MAC key of the original license."""
        keys = codec.session_keys_from_secrets(record.secrets)
        try:
            crypto.hmac_sha256_verify(keys.client_mac, challenge.signed_payload, challenge.signature)
        except crypto.CryptoError as exc:
            raise DrmError(ErrorCode.SIGNATURE_INVALID, "the request is not signed by the license holder") from exc
        keys_of[record.license_id] = keys

    def build_existing(grant: Grant) -> bytes:
        keys = keys_of[grant.license_id]
        return codec.build_license(grant, parsed, device_public_key=None, session_keys=keys).body

    if challenge.kind is RequestKind.RENEWAL:
        answer = service.renew(challenge, verify=verify, build=build_existing, in_use=parsed.seconds_since_started > 0,
                               access=access_of(request))
    else:
        answer = service.release(challenge, verify=verify, build=build_existing)
    return _reply(answer)


def _reply(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=CONTENT_TYPE)


def setup(app: web.Application) -> None:
    app[TRUST] = WidevineTrust(app[KEYRING].root_public_key)
    app.router.add_post("/widevine/license", license_exchange, name="widevine.license")
