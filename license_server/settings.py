"""Server settings: CLI flags, with ``DRM_SERVER_*`` environment variables as defaults."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator


class Settings(BaseModel):
    host: str = Field("127.0.0.1", description="Address to bind; loopback unless told otherwise.")
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Field(Path("data"), description="Where the SQLite stores (one per namespace) live.")
    keys_dir: Path | None = Field(None, description="The keys/ directory; default: the project's test keys.")
    test_clock: bool = Field(False, description="Enable the controlled clock and /admin/clock.")
    allow_compromised_devices: bool = Field(
        False, description="NEGATIVE TESTING ONLY: serve rooted/tampered devices as TAMPERED, SD at most."
    )
    require_attestation: bool = Field(
        False, description="Refuse challenges without attestation evidence (ATTESTATION_REQUIRED) instead of serving "
                           "them as unverified, software-only platforms.",
    )
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    media_dir: Path | None = Field(
        None, description="Packaged media served by /media (presigned URLs); default: <data_dir>/media."
    )
    media_url_ttl: int = Field(3600, gt=0, le=7 * 86400, description="Seconds a presigned media URL stays valid.")
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="Server log lines: text, or one JSON object each.")
    admin_token: str | None = Field(
        None, min_length=16, max_length=256, pattern=r"^[\x21-\x7e]+$", repr=False,
        description="Bearer token of the /admin/ API; generated at start (and written to <data_dir>/admin-token) "
                    "when not given.",
    )
    admin_remote: bool = Field(False, description="Let non-loopback clients use the /admin/ API (token still needed).")
    require_token: bool = Field(
        False, description="Strict mode: no entitlement token (X-DRM-Token), no license. Default: development mode."
    )
    stream_limits: bool = Field(
        True, description="Enforce concurrent-stream limits (max_streams); False only for negative testing."
    )
    token_jwks: Path | None = Field(
        None, description="JWK set of the operator keys that sign entitlement tokens; default: <keys>/tokens/jwks.json."
    )
    token_audience: str | None = Field(None, description="Required `aud` of entitlement tokens (unchecked if unset).")
    token_issuer: str | None = Field(None, description="Required `iss` of entitlement tokens (unchecked if unset).")
    token_leeway: int = Field(30, ge=0, le=600, description="Seconds of clock skew tolerated for exp, nbf and iat.")
    reports_dir: Path | None = Field(None, description="Where the console finds `drm-conformance run --report` output.")
    audit_max_rows: int = Field(100_000, ge=0, le=10**12, description="Refusal audit rows kept (0: no limit).")
    audit_max_age: int = Field(30 * 86400, ge=0, le=100 * 365 * 86400,
                               description="Seconds refusal audit rows are kept (0: no limit).")
    workers: int = Field(1, ge=1, le=64, description="Server processes sharing the port and the store.")
    max_namespaces: int = Field(1000, ge=1, le=1_000_000,
                                description="Namespaces the server creates at most, default included (each is a "
                                            "store); a new one beyond it is refused with NAMESPACE_LIMIT_REACHED.")

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("log level must be DEBUG, INFO, WARNING or ERROR")
        return value

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def database_path(self) -> Path:
        return self.data_dir / "license-server.db"

    @property
    def rights_overlay_path(self) -> Path:
        """Where servers before namespaces kept the admin's rights (imported once into the default namespace)."""
        return self.data_dir / "rights.json"

    @property
    def revocations_path(self) -> Path:
        """Where servers before namespaces kept revocations (imported once into the default namespace)."""
        return self.data_dir / "revocations.json"

    @property
    def media_path(self) -> Path:
        """The media origin's root: ``--media-dir``, else ``<data_dir>/media``."""
        return self.media_dir if self.media_dir is not None else self.data_dir / "media"

    @property
    def admin_token_path(self) -> Path:
        """Where a generated admin token is written (mode 0600) for scripts to read."""
        return self.data_dir / "admin-token"

    @property
    def url_signing_key_path(self) -> Path:
        """The per-data-dir secret that signs media URLs (created on first use, mode 0600)."""
        return self.data_dir / "media-url-signing.key"
