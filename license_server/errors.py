"""One error vocabulary for every dialect.

Core code raises :class:`DrmError` with a stable :class:`ErrorCode`; the HTTP
layer maps it once to the dialect's native error shape, an HTTP status and the
``X-DRM-Error-Code`` response header. Codes are part of the public interface:
never rename one, only add.
"""

from __future__ import annotations

from enum import Enum

ERROR_CODE_HEADER = "X-DRM-Error-Code"


class ErrorCode(str, Enum):
    """Stable error codes. The value is the code; ``status`` the HTTP status."""

    def __new__(cls, value: str, status: int, summary: str) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status  # type: ignore[attr-defined]
        member.summary = summary  # type: ignore[attr-defined]
        return member

    status: int
    summary: str

    # Request shape
    MALFORMED_CHALLENGE = ("MALFORMED_CHALLENGE", 400, "The request body is not a valid challenge for this endpoint.")
    CHALLENGE_TOO_LARGE = ("CHALLENGE_TOO_LARGE", 413, "The request body exceeds the size limit.")
    UNSUPPORTED_REQUEST = ("UNSUPPORTED_REQUEST", 400, "The request type is not supported here.")
    INVALID_POLICY_OVERRIDE = (
        "INVALID_POLICY_OVERRIDE", 400,
        "The cfg= policy override names an unknown key or a bad value.",
    )
    # Device identity and attestation
    CERTIFICATE_INVALID = ("CERTIFICATE_INVALID", 403, "The device certificate does not chain to a trusted root.")
    SIGNATURE_INVALID = ("SIGNATURE_INVALID", 403, "The challenge signature does not verify.")
    DEVICE_REVOKED = ("DEVICE_REVOKED", 403, "The device or its model (system id) is revoked.")
    DEVICE_ROOTED = ("DEVICE_ROOTED", 403, "The device reports root access or a compromised OS.")
    BOOTLOADER_UNLOCKED = ("BOOTLOADER_UNLOCKED", 403, "The device bootloader is unlocked or boot is not verified.")
    APP_NOT_GENUINE = ("APP_NOT_GENUINE", 403, "The app is tampered with or not the genuine, recognized build.")
    ATTESTATION_INVALID = (
        "ATTESTATION_INVALID", 403,
        "The attestation evidence is missing, stale or bound to another request.",
    )
    ATTESTATION_REQUIRED = (
        "ATTESTATION_REQUIRED", 403,
        "Attestation evidence is required (serve --require-attestation, cfg attestation:required, a token's "
        "require_attestation, or a persistent license) and the challenge carries none.",
    )
    REPLAYED_CHALLENGE = (
        "REPLAYED_CHALLENGE", 403,
        "The challenge was already used or is outside the freshness window.",
    )
    # Policy
    SECURITY_LEVEL_TOO_LOW = (
        "SECURITY_LEVEL_TOO_LOW", 403,
        "The device's security level or output protection is too low.",
    )
    OFFLINE_NOT_ALLOWED = (
        "OFFLINE_NOT_ALLOWED", 403,
        "The content owner does not allow persistent (offline) licenses for this title.",
    )
    LEASE_WITH_OFFLINE = ("LEASE_WITH_OFFLINE", 400, "A lease cannot be combined with a persistent (offline) license.")
    CONTENT_NOT_FOUND = ("CONTENT_NOT_FOUND", 404, "The content id is not in the catalog.")
    KEY_NOT_FOUND = ("KEY_NOT_FOUND", 404, "A requested key id is not in the catalog.")
    KEY_REVOKED = ("KEY_REVOKED", 403, "A requested content key is revoked (revocations.json key_ids).")
    # Lifecycle
    LICENSE_NOT_FOUND = ("LICENSE_NOT_FOUND", 404, "No license with that id was issued to this device.")
    LICENSE_EXPIRED = ("LICENSE_EXPIRED", 403, "The license has expired.")
    LICENSE_RELEASED = ("LICENSE_RELEASED", 403, "The license was released.")
    RENEWAL_NOT_ALLOWED = ("RENEWAL_NOT_ALLOWED", 403, "The license policy does not allow renewal.")
    # Downloads and the media origin (presigned URLs)
    DEVICE_NOT_FOUND = ("DEVICE_NOT_FOUND", 404, "The device is unknown to this server (it never obtained a license).")
    DEVICE_TYPE_NOT_ALLOWED = (
        "DEVICE_TYPE_NOT_ALLOWED", 403,
        "Downloads are allowed on mobile phones and tablets only.",
    )
    TIER_NOT_ALLOWED = ("TIER_NOT_ALLOWED", 403, "The account's subscription tier does not include downloads.")
    PERSISTENT_LICENSE_REQUIRED = (
        "PERSISTENT_LICENSE_REQUIRED", 403,
        "A download needs an active persistent license for the title.",
    )
    MEDIA_NOT_PACKAGED = ("MEDIA_NOT_PACKAGED", 404, "The title is not packaged in that scheme on this server.")
    MEDIA_NOT_FOUND = ("MEDIA_NOT_FOUND", 404, "No such media file.")
    URL_SIGNATURE_INVALID = ("URL_SIGNATURE_INVALID", 403, "The media URL's signature is missing or does not verify.")
    URL_EXPIRED = ("URL_EXPIRED", 403, "The media URL has expired; authorize the download again.")
    RANGE_NOT_SATISFIABLE = ("RANGE_NOT_SATISFIABLE", 416, "The requested byte range is malformed or outside the file.")
    # Entitlement tokens (X-DRM-Token)
    TOKEN_REQUIRED = ("TOKEN_REQUIRED", 401, "An entitlement token is required (the server runs with --require-token).")
    TOKEN_MALFORMED = ("TOKEN_MALFORMED", 401, "The entitlement token is not a well-formed JWT.")
    TOKEN_ALGORITHM_NOT_ALLOWED = (
        "TOKEN_ALGORITHM_NOT_ALLOWED", 401,
        "The token's algorithm is not allowed (HS256, RS256, ES256 only) or does not match its key.",
    )
    TOKEN_KEY_UNKNOWN = ("TOKEN_KEY_UNKNOWN", 401, "The token names no kid, or a kid the server does not know.")
    TOKEN_SIGNATURE_INVALID = ("TOKEN_SIGNATURE_INVALID", 401, "The token's signature does not verify.")
    TOKEN_EXPIRED = ("TOKEN_EXPIRED", 401, "The token has expired (exp).")
    TOKEN_NOT_YET_VALID = ("TOKEN_NOT_YET_VALID", 401, "The token is not valid yet (nbf, or iat in the future).")
    TOKEN_AUDIENCE_INVALID = ("TOKEN_AUDIENCE_INVALID", 401, "The token's audience (aud) is not this license server.")
    TOKEN_ISSUER_INVALID = ("TOKEN_ISSUER_INVALID", 401, "The token's issuer (iss) is not the configured one.")
    TOKEN_CLAIMS_INVALID = ("TOKEN_CLAIMS_INVALID", 401, "The token's claims are missing or malformed.")
    TOKEN_REUSED = ("TOKEN_REUSED", 401, "The single-use token (jti) was already used for another license.")
    TOKEN_DEVICE_MISMATCH = ("TOKEN_DEVICE_MISMATCH", 403, "The token is bound to another device.")
    CONTENT_NOT_ENTITLED = ("CONTENT_NOT_ENTITLED", 403, "The token does not entitle the viewer to this content.")
    # Content-owner rights and business rules
    REGION_NOT_ALLOWED = (
        "REGION_NOT_ALLOWED", 403,
        "The title or the entitlement is not available in the viewer's region.",
    )
    DEVICE_LIMIT_REACHED = (
        "DEVICE_LIMIT_REACHED", 403,
        "The account already has the most devices holding downloads; release one first.",
    )
    DOWNLOAD_LIMIT_REACHED = (
        "DOWNLOAD_LIMIT_REACHED", 403,
        "The device already holds the most active downloads; release one first.",
    )
    MONTHLY_ALLOWANCE_EXHAUSTED = (
        "MONTHLY_ALLOWANCE_EXHAUSTED", 403,
        "The tier's monthly download allowance on this device is used up.",
    )
    # Concurrent streams (stream sessions with heartbeat leases)
    STREAM_LIMIT_REACHED = (
        "STREAM_LIMIT_REACHED", 403,
        "The account already streams on the most devices at once (max_streams); stop one or wait for its lease.",
    )
    STREAM_EVICTED = (
        "STREAM_EVICTED", 403,
        "This stream session was ended (a newer stream took its slot, or an operator ended it); start a new one.",
    )
    # Admin API (/admin/...)
    ADMIN_UNAUTHORIZED = (
        "ADMIN_UNAUTHORIZED", 401,
        "The admin API needs the header Authorization: Bearer <admin token>; it is missing or wrong.",
    )
    ADMIN_NOT_LOOPBACK = (
        "ADMIN_NOT_LOOPBACK", 403,
        "The admin API answers loopback clients only (start the server with --admin-remote to allow others).",
    )
    ADMIN_REQUEST_INVALID = ("ADMIN_REQUEST_INVALID", 400, "The admin request's parameters or JSON body are invalid.")
    CLOCK_OUT_OF_RANGE = (
        "CLOCK_OUT_OF_RANGE", 400,
        "The test clock cannot move before 1970 or past 9000-01-01 (licenses end up to ten years later).",
    )
    ADMIN_NOT_FOUND = (
        "ADMIN_NOT_FOUND", 404,
        "The admin API has no such resource (license, device, revocation or route).",
    )
    # Key service (what packagers call: Widevine CENC key API, PlayReady packaging, CPIX/SPEKE)
    KEYSERVER_MALFORMED_REQUEST = (
        "KEYSERVER_MALFORMED_REQUEST", 400,
        "The key request is not well-formed (JSON, base64, XML or a field).",
    )
    KEYSERVER_SIGNATURE_INVALID = (
        "KEYSERVER_SIGNATURE_INVALID", 403,
        "The key request's signature does not verify with the signer's credentials.",
    )
    KEYSERVER_SIGNER_UNKNOWN = (
        "KEYSERVER_SIGNER_UNKNOWN", 403,
        "The signer is not in keys/packagers/ (or the body names another signer than the URL).",
    )
    KEYSERVER_TRACK_TYPE_UNKNOWN = (
        "KEYSERVER_TRACK_TYPE_UNKNOWN", 400,
        "A requested track type is missing or not one of SD, HD, UHD1, UHD2, AUDIO.",
    )
    KEYSERVER_CONTENT_ID_MISSING = ("KEYSERVER_CONTENT_ID_MISSING", 400, "The key request names no content id.")
    KEYSERVER_CONTENT_RESERVED = (
        "KEYSERVER_CONTENT_RESERVED", 409,
        "The content id is a catalog title: its keys come from keys/catalog.json, not from the key service.",
    )
    KEYSERVER_UNSUPPORTED_VERSION = (
        "KEYSERVER_UNSUPPORTED_VERSION", 422,
        "SPEKE: the X-Speke-Version (2.0) or CPIX@version (2.3) is missing or not supported.",
    )
    KEYSERVER_CPIX_CONTENT_ID_MISSING = (
        "KEYSERVER_CPIX_CONTENT_ID_MISSING", 422,
        "SPEKE: the CPIX document has no contentId.",
    )
    KEYSERVER_CPIX_INVALID = (
        "KEYSERVER_CPIX_INVALID", 422,
        "SPEKE: the CPIX document breaks a rule of the CPIX 2.3 / SPEKE v2 profile (the message names it).",
    )
    KEYSERVER_NOT_CONFIGURED = (
        "KEYSERVER_NOT_CONFIGURED", 404,
        "The keys directory has no key seed (keys/keyserver/seed.json): the key service is off.",
    )
    # Namespaces (issue 15)
    INVALID_NAMESPACE = (
        "INVALID_NAMESPACE", 400,
        "The namespace (/ns/<name>/ or X-DRM-Namespace) is not 1-40 lower-case letters, digits and inner hyphens.",
    )
    NAMESPACE_LIMIT_REACHED = (
        "NAMESPACE_LIMIT_REACHED", 429,
        "The server already holds as many namespaces as it allows (--max-namespaces); delete one first.",
    )
    NAMESPACE_NOT_DELETABLE = (
        "NAMESPACE_NOT_DELETABLE", 409, "The default namespace can be reset, never deleted.",
    )
    # Test hooks
    INJECTED_FAULT = ("INJECTED_FAULT", 500, "A fault injected on request by a test hook (e.g. cfg errorcode:).")
    # Server
    INTERNAL_ERROR = ("INTERNAL_ERROR", 500, "The server failed unexpectedly; details are in its log.")


class DrmError(Exception):
    """A refusal with a stable code; safe to show to the client."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        self.code = code
        self.message = message or code.summary
        super().__init__(f"{code.value}: {self.message}")

    @property
    def status(self) -> int:
        return self.code.status


def malformed(message: str) -> DrmError:
    """Shorthand for the commonest refusal: bytes that do not parse."""
    return DrmError(ErrorCode.MALFORMED_CHALLENGE, message)
