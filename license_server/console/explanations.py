"""One line per refusal code: what it means and what to change. Keyed by :class:`ErrorCode`."""

from __future__ import annotations

import re

from license_server.errors import ErrorCode

E = ErrorCode
EXPLANATIONS: dict[ErrorCode, tuple[str, str]] = {
    E.MALFORMED_CHALLENGE: ("the body is not a challenge this endpoint understands",
                            "check the player posts the CDM's message unmodified to the right dialect's URL"),
    E.CHALLENGE_TOO_LARGE: ("the body is over the size limit", "send only the challenge, not a wrapped document"),
    E.UNSUPPORTED_REQUEST: ("this endpoint does not handle that request type", "use the dialect's documented exchange"),
    E.INVALID_POLICY_OVERRIDE: ("the cfg= override names an unknown key or a bad value",
                                "fix the cfg=(...) query (see the README's cfg table)"),
    E.CERTIFICATE_INVALID: ("the device certificate does not chain to our test roots",
                            "provision the device against this server's keys/ (device-emulator create)"),
    E.SIGNATURE_INVALID: ("the challenge signature does not verify",
                          "the message was altered, or signed by another key"),
    E.DEVICE_REVOKED: ("the device or its model is on the revocation list",
                       "un-revoke it on the Devices page (or DELETE /admin/revocations/...)"),
    E.DEVICE_ROOTED: ("the device reports root access or a modified OS",
                      "use a device that is not rooted, or start the server with --allow-compromised-devices"),
    E.BOOTLOADER_UNLOCKED: ("the bootloader is unlocked or boot is not verified",
                            "lock the bootloader, or serve such devices with --allow-compromised-devices"),
    E.APP_NOT_GENUINE: ("the app is not a genuine, recognised build",
                        "sign the app with a key listed in keys/apps.json"),
    E.ATTESTATION_INVALID: ("the attestation evidence is missing, stale or for another request",
                            "send a freshly built challenge; do not reuse evidence"),
    E.ATTESTATION_REQUIRED: ("the challenge carries no attestation evidence, and this request needs it "
                             "(--require-attestation, cfg attestation:required, the token, or a persistent license)",
                             "use an attesting device (the emulator's CDM), or ask for a streaming license without "
                             "those requirements"),
    E.CLOCK_OUT_OF_RANGE: ("the test clock was asked to move before 1970 or past 9000-01-01",
                           "advance by a smaller step, or reset it with POST /admin/clock {\"reset\": true}"),
    E.REPLAYED_CHALLENGE: ("the challenge was already used or its time is outside the freshness window",
                           "build a new challenge; if the device clock is off, run `device-emulator sync`"),
    E.SECURITY_LEVEL_TOO_LOW: ("the device's security level or output protection is too low for what was asked",
                               "ask for fewer tracks, use an L1 device, or lower the title's track rules"),
    E.OFFLINE_NOT_ALLOWED: ("the title does not allow persistent licenses",
                            "request a streaming license, or allow downloads in the title's rights"),
    E.LEASE_WITH_OFFLINE: ("a lease cannot combine with an offline license", "drop the lease or the offline request"),
    E.CONTENT_NOT_FOUND: ("the content id is not in the catalog", "use a content id from keys/catalog.json"),
    E.KEY_NOT_FOUND: ("a requested key id is not in the catalog", "package the media with the catalog's KIDs"),
    E.KEY_REVOKED: ("a requested content key is revoked", "un-revoke the key id on the Devices page"),
    E.LICENSE_NOT_FOUND: ("no such license was issued by this server", "acquire a new license"),
    E.LICENSE_EXPIRED: ("the license has expired", "acquire a new license, or renew before the deadline"),
    E.LICENSE_RELEASED: ("the license was released", "acquire a new license"),
    E.RENEWAL_NOT_ALLOWED: ("the license policy does not allow renewal", "issue it with can_renew (cfg=(renew:true))"),
    E.TOKEN_REQUIRED: ("strict mode needs an entitlement token", "send X-DRM-Token (license-server token mint)"),
    E.TOKEN_EXPIRED: ("the entitlement token has expired", "mint a fresh token"),
    E.TOKEN_SIGNATURE_INVALID: ("the token's signature does not verify", "sign it with a key of the server's JWK set"),
    E.TOKEN_REUSED: ("the single-use token was already spent", "mint a new token for each license"),
    E.CONTENT_NOT_ENTITLED: ("the token does not cover this content", "add the content id to the token's claims"),
    E.REGION_NOT_ALLOWED: ("the title or token is not available in the viewer's region", "check X-DRM-Region"),
    E.DEVICE_LIMIT_REACHED: ("the account holds downloads on the most devices", "release a download on another device"),
    E.DOWNLOAD_LIMIT_REACHED: ("the device holds the most active downloads", "release one first"),
    E.MONTHLY_ALLOWANCE_EXHAUSTED: ("the tier's monthly allowance on this device is used up",
                                    "wait for next month (advance the test clock) or change tier"),
    E.STREAM_LIMIT_REACHED: ("the account already streams on its max_streams devices",
                             "stop a stream (release, Secure Stop, lease end) or wait until a lease lapses"),
    E.STREAM_EVICTED: ("this stream session was ended (evict_oldest, or an operator)", "start a new stream"),
    E.DEVICE_NOT_FOUND: ("the device never obtained a license here", "acquire a license before downloading"),
    E.DEVICE_TYPE_NOT_ALLOWED: ("downloads are for phones and tablets", "use a mobile device model"),
    E.TIER_NOT_ALLOWED: ("the account's tier does not include downloads", "use a token of a tier with downloads"),
    E.PERSISTENT_LICENSE_REQUIRED: ("a download needs an active persistent license for the title",
                                    "acquire a persistent license first (--type persistent)"),
    E.MEDIA_NOT_PACKAGED: ("the title is not packaged in that scheme here", "run `license-server package`"),
    E.MEDIA_NOT_FOUND: ("no such media file", "use the URLs POST /downloads answered"),
    E.URL_SIGNATURE_INVALID: ("the media URL's signature does not verify", "use the URL exactly as handed out"),
    E.URL_EXPIRED: ("the media URL has expired", "authorize the download again for fresh URLs"),
    E.RANGE_NOT_SATISFIABLE: ("the byte range is malformed or past the end", "request a range inside the file"),
    E.TOKEN_MALFORMED: ("the entitlement token is not a compact JWT", "send header.payload.signature"),
    E.TOKEN_ALGORITHM_NOT_ALLOWED: ("the token's algorithm is not allowed or does not match its key",
                                    "sign with HS256, RS256 or ES256 and the key's own algorithm"),
    E.TOKEN_KEY_UNKNOWN: ("the token's kid is not in the server's JWK set",
                          "sign with a configured key (--token-jwks)"),
    E.TOKEN_NOT_YET_VALID: ("the token is not valid yet (nbf or iat)", "check the issuer's clock"),
    E.TOKEN_AUDIENCE_INVALID: ("the token's aud is not this server", "mint it for --token-audience"),
    E.TOKEN_ISSUER_INVALID: ("the token's iss is not the configured one", "mint it with --token-issuer's value"),
    E.TOKEN_CLAIMS_INVALID: ("the token's claims are missing or malformed", "see docs/entitlements.md for the claims"),
    E.TOKEN_DEVICE_MISMATCH: ("the token is bound to another device", "mint a token for this device"),
    E.ADMIN_UNAUTHORIZED: ("the admin token is missing or wrong", "send Authorization: Bearer <admin token>"),
    E.ADMIN_NOT_LOOPBACK: ("the admin API answers loopback clients only", "call from the host, or --admin-remote"),
    E.ADMIN_REQUEST_INVALID: ("the admin request is invalid", "see /openapi.json"),
    E.ADMIN_NOT_FOUND: ("no such admin resource", "check the id"),
    E.INVALID_NAMESPACE: ("the namespace name in /ns/<name>/ or X-DRM-Namespace is not valid",
                          "use 1-40 lower-case letters, digits and inner hyphens, e.g. ci-1234"),
    E.NAMESPACE_LIMIT_REACHED: ("the server holds as many namespaces as --max-namespaces allows",
                                "DELETE /admin/namespaces/<name> the ones you no longer need"),
    E.NAMESPACE_NOT_DELETABLE: ("the default namespace cannot be deleted",
                                "reset it instead: POST /admin/namespaces/default/reset"),
    E.KEYSERVER_MALFORMED_REQUEST: ("the packager's key request is not well-formed", "check the JSON, base64 or XML"),
    E.KEYSERVER_SIGNATURE_INVALID: ("the key request's signature does not verify",
                                    "use the signer's key and IV from keys/packagers/"),
    E.KEYSERVER_SIGNER_UNKNOWN: ("the signer is not known", "add it to keys/packagers/ or use widevine_test"),
    E.KEYSERVER_TRACK_TYPE_UNKNOWN: ("an unknown track type was requested", "ask for SD, HD, UHD1, UHD2 or AUDIO"),
    E.KEYSERVER_CONTENT_ID_MISSING: ("the key request names no content id", "pass --content_id to the packager"),
    E.KEYSERVER_CONTENT_RESERVED: ("the content id is a catalog title",
                                   "package catalog titles with their catalog keys, or pick another id"),
    E.KEYSERVER_UNSUPPORTED_VERSION: ("the SPEKE or CPIX version is not supported",
                                      "send X-Speke-Version 2.0 and CPIX version 2.3"),
    E.KEYSERVER_CPIX_CONTENT_ID_MISSING: ("the CPIX document has no contentId", "set CPIX@contentId"),
    E.KEYSERVER_CPIX_INVALID: ("the CPIX document breaks the SPEKE v2 profile", "read the message for the rule"),
    E.KEYSERVER_NOT_CONFIGURED: ("the key service has no key seed", "add keys/keyserver/seed.json"),
    E.INJECTED_FAULT: ("a fault injected by a test hook", "remove the fault plan on the Clock and faults page"),
    E.INTERNAL_ERROR: ("the server failed unexpectedly", "read the server log"),
}
_SKEW = re.compile(r"challenge time is ([+-]\d+) s from the server clock")


def explain(code: str | None, message: str | None = None) -> tuple[str, str]:
    """(one-line explanation, what to change) for a refusal code; clock skew gets its size in days."""
    error = ErrorCode._value2member_map_.get(code or "")
    if not isinstance(error, ErrorCode):
        return ("unknown code", "see the server log")
    match = _SKEW.search(message or "")
    if error is ErrorCode.REPLAYED_CHALLENGE and match:
        skew = int(match.group(1))  # server now minus challenge time
        days = abs(skew) / 86400
        size = f"{days:.0f} days" if days >= 1 else f"{abs(skew)} s"
        side = "behind" if skew > 0 else "ahead of"
        return (f"device clock {size} {side} the server", "run `device-emulator sync` (or fix the device clock)")
    return EXPLANATIONS.get(error, (error.summary, "see docs/admin-api.md"))
