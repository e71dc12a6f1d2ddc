"""Request and response models of the admin API and the JSON endpoints.

One definition serves three purposes: the admin handlers validate their input
and serialize their output through these models, and :mod:`license_server.openapi`
builds ``/openapi.json`` from their JSON schemas, so the document cannot drift
from what the server does. The models of ``POST /downloads`` live beside their
logic in :mod:`license_server.downloads` and are reused as they are.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from license_server.clock import parse_duration
from license_server.dialects import NAMES
from license_server.errors import ErrorCode

CONTENT_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
HEX_ID = r"^[0-9a-fA-F]{8,64}$"
MAX_FAULT_WINDOW = 7 * 86400

ORIGIN_TARGETS = ("downloads", "media")
"""Fault targets besides the dialects: ``POST /downloads`` and the presigned media files."""
FAULT_TARGETS: tuple[str, ...] = (*NAMES, *ORIGIN_TARGETS)
FaultDialect = Literal[FAULT_TARGETS]  # type: ignore[valid-type]  # every dialect of the registry, then the origin
FaultAction = Literal["latency", "error", "status", "drop"]
LicenseState = Literal["issued", "in_use", "renewed", "released", "expired"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ errors


class ErrorDetail(BaseModel):
    code: ErrorCode = Field(description="Stable error code, also in the X-DRM-Error-Code header.")
    message: str


class ErrorBody(BaseModel):
    """The JSON error shape of the admin API, /downloads and /clearkey/license."""

    error: ErrorDetail


# ------------------------------------------------------------------- clock


class ClockChange(_Request):
    """Body of ``POST /admin/clock``: exactly one of ``advance``, ``set`` or ``reset``."""

    advance: str | int | None = Field(None, description='A duration ("31d", "48h", "90") or seconds.')
    set: str | None = Field(None, description="An ISO-8601 date or datetime (UTC unless a zone is given).")
    reset: bool | None = Field(None, description="true: undo every move (back to the wall clock).")

    @model_validator(mode="after")
    def _exactly_one(self) -> ClockChange:
        if [self.advance is not None, self.set is not None, bool(self.reset)].count(True) != 1:
            raise ValueError('give exactly one of "advance", "set" or "reset": true')
        return self


class ClockState(BaseModel):
    now: int = Field(description="The server clock, UNIX seconds.")
    iso: str


# ---------------------------------------------------------------- licenses


class AuditEntry(BaseModel):
    id: int
    at: int
    system: str
    event: str
    device_id: str | None = None
    content_id: str | None = None
    license_id: str | None = None
    code: str | None = None
    message: str | None = None


class LicenseSummary(BaseModel):
    """A license on the server's books (never its key material)."""

    license_id: str
    system: str
    device_id: str | None
    account: str | None = Field(None, description="The entitled account (null: development mode, no token).")
    tier: str | None = Field(None, description="The account's tier from the entitlement token.")
    content_id: str
    kind: str
    state: LicenseState = Field(description="The state now, expiry applied (core.lifecycle.current_state).")
    stored_state: str = Field(description="The state as last written to the store.")
    version: int
    kids: list[str]
    tracks: list[str]
    issued_at: int
    updated_at: int
    license_start: int
    first_used_at: int | None
    released_at: int | None
    expires_at: int | None = Field(description="Start + min(non-zero rental, license duration); null: no end.")


class LicenseList(BaseModel):
    count: int
    licenses: list[LicenseSummary]


class LicenseDetail(LicenseSummary):
    policy: dict[str, Any]
    audit: list[AuditEntry] = Field(description="The license's audit trail, newest first.")


class LicenseQuery(_Request):
    """Query of ``GET /admin/licenses``; every filter is optional."""

    device_id: str | None = Field(None, pattern=HEX_ID)
    account: str | None = Field(None, min_length=1, max_length=128)
    content_id: str | None = Field(None, pattern=CONTENT_ID)
    state: LicenseState | None = None
    system: str | None = Field(None, max_length=32)
    limit: int = Field(100, ge=1, le=1000)


class ForceExpire(_Request):
    """Optional body of ``POST /admin/licenses/{license_id}/expire``."""

    reason: str | None = Field(None, max_length=500)


# ----------------------------------------------------------------- devices


class DeviceSummary(BaseModel):
    device_id: str
    system: str
    system_id: int
    model: str
    security_level: str
    verification: str
    first_seen: int
    last_seen: int
    revoked: bool
    revoked_by: list[Literal["device", "system_id"]] = Field(
        description="Which revocation entries cover the device (its id, its model's system id).")


class DeviceList(BaseModel):
    count: int
    devices: list[DeviceSummary]


class DeviceDetail(DeviceSummary):
    licenses: list[LicenseSummary]


class RevocationRequest(_Request):
    """Body of ``POST /admin/revocations``: exactly one target, and an optional reason."""

    device_id: str | None = Field(None, pattern=HEX_ID)
    system_id: int | None = Field(None, ge=0, le=2**32 - 1)
    model: str | None = Field(None, min_length=1, max_length=128, description="A model name; revokes its system id.")
    key_id: str | None = Field(None, pattern=r"^[0-9a-fA-F]{32}$", description="A content key id (KID), 16 bytes hex.")
    reason: str | None = Field(None, max_length=500)

    @model_validator(mode="after")
    def _exactly_one(self) -> RevocationRequest:
        given = [n for n in ("device_id", "system_id", "model", "key_id") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError('give exactly one of "device_id", "system_id", "model" or "key_id"')
        return self


class Revocation(BaseModel):
    kind: Literal["device", "system_id", "key_id"]
    value: str = Field(description="Device id or KID (lowercase hex), or the system id in decimal.")
    model: str | None = Field(None, description="The model name of a revoked system id, when known.")
    reason: str | None = None
    revoked_at: int | None = None


class RevocationList(BaseModel):
    revocations: list[Revocation]


# ------------------------------------------------------------------ faults


class FaultSpec(_Request):
    """Body of ``POST /admin/faults``: which requests to disturb, how, and for how long."""

    dialect: FaultDialect | None = Field(None, description="null: every license, download and media request.")
    content_id: str | None = Field(None, pattern=CONTENT_ID, description=(
        "Only requests naming this content: ?content= query, a JSON body's content_id/content, or the /media path."))
    action: FaultAction
    latency_ms: int | None = Field(None, ge=1, le=60_000, description="Delay before answering (any action).")
    error_code: ErrorCode | None = Field(None, description='"error": the stable code answered in the dialect\'s shape.')
    http_status: int | None = Field(None, ge=400, le=599, description='"status": the HTTP status answered.')
    count: int | None = Field(None, ge=1, le=100_000, description="Apply to the next N matching requests.")
    duration: str | int | None = Field(None, description='Apply during a window of the server clock ("30s", "10m").')

    @model_validator(mode="after")
    def _consistent(self) -> FaultSpec:
        if self.action == "latency" and self.latency_ms is None:
            raise ValueError('"latency" needs latency_ms')
        if self.action == "error" and self.error_code is None:
            raise ValueError('"error" needs error_code')
        if self.action == "status" and self.http_status is None:
            raise ValueError('"status" needs http_status')
        if self.count is None and self.duration is None:
            raise ValueError('give "count" (next N requests) or "duration" (a time window), or both')
        window = self.window_seconds
        if window is not None and not 0 < window <= MAX_FAULT_WINDOW:
            raise ValueError(f"duration must be between 1 s and {MAX_FAULT_WINDOW} s")
        return self

    @property
    def window_seconds(self) -> int | None:
        return None if self.duration is None else parse_duration(str(self.duration))


class Fault(BaseModel):
    id: str
    dialect: FaultDialect | None
    content_id: str | None
    action: FaultAction
    latency_ms: int | None
    error_code: ErrorCode | None
    http_status: int | None
    remaining: int | None = Field(description="Matching requests left; null: limited by the window only.")
    until: int | None = Field(description="End of the window on the server clock; null: limited by count only.")
    created_at: int
    hits: int = Field(description="Requests this fault has disturbed so far.")


class FaultList(BaseModel):
    faults: list[Fault]


class FaultsCleared(BaseModel):
    cleared: int


class NamespaceSummary(BaseModel):
    name: str
    licenses: int = Field(description="Licenses stored in the namespace.")
    devices: int = Field(description="Devices the namespace has seen.")
    audit: int = Field(description="Audit entries (grants, refusals, lifecycle events).")


class NamespaceList(BaseModel):
    count: int
    namespaces: list[NamespaceSummary]


class NamespaceCleared(BaseModel):
    name: str
    action: Literal["reset", "deleted"]


# ------------------------------------------------- non-admin JSON endpoints


class Health(BaseModel):
    """``GET /healthz``."""

    status: Literal["ok"]
    version: str
    time: int
    test_clock: bool
    public_test_keys: bool
    schema_version: int
    systems: list[str]
    mode: Literal["development", "strict"] = Field(description="strict: --require-token (no token, no license).")
    workers: int = Field(description="Server processes sharing the port and the store.")
    process: int = Field(description="Id of the process that answered (one of the workers).")
    namespace: str = Field(description="The namespace that answered (/ns/<name>/ or X-DRM-Namespace; default).")


class ClearKeyRequest(BaseModel):
    """W3C Clear Key license request; without ``type`` it is a release of persistent keys."""

    kids: list[str] = Field(description="Key ids, base64url without padding (16 bytes each).")
    type: Literal["temporary", "persistent-license"] | None = None


class JsonWebKey(BaseModel):
    kty: Literal["oct"]
    kid: str
    k: str


class ClearKeyLicense(BaseModel):
    """A JWK set (license) or, for a release, ``{"kids": [...]}`` acknowledging it."""

    keys: list[JsonWebKey] | None = None
    kids: list[str] | None = None
    type: Literal["temporary", "persistent-license"] | None = None
