"""Neutral, typed messages that every dialect's codec produces and consumes.

Nothing here knows about a wire format. Codecs turn bytes into a
:class:`LicenseChallenge`; the core turns that into a :class:`Grant`; the codec
turns the grant back into bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum


class SecurityLevel(str, Enum):
    """Device security level: L1 decrypts and decodes in a TEE, L3 in software."""

    L1 = "L1"
    L3 = "L3"


class Robustness(IntEnum):
    """Key robustness requirement (numbering of Widevine's KeyContainer.SecurityLevel)."""

    SW_SECURE_CRYPTO = 1
    SW_SECURE_DECODE = 2
    HW_SECURE_CRYPTO = 3
    HW_SECURE_DECODE = 4
    HW_SECURE_ALL = 5

    @classmethod
    def of_level(cls, level: SecurityLevel) -> Robustness:
        """The strongest robustness a device of ``level`` can honour."""
        return cls.HW_SECURE_ALL if level is SecurityLevel.L1 else cls.SW_SECURE_CRYPTO


class Hdcp(IntEnum):
    """Output protection (numbering of Widevine's OutputProtection.HDCP)."""

    NONE = 0
    V1 = 1
    V2 = 2
    V2_1 = 3
    V2_2 = 4
    V2_3 = 5
    NO_DIGITAL_OUTPUT = 0xFF

    def satisfies(self, required: Hdcp) -> bool:
        """A device with this output capability meets ``required``."""
        return self is Hdcp.NO_DIGITAL_OUTPUT or self >= required


class Track(str, Enum):
    AUDIO = "AUDIO"
    SD = "SD"
    HD = "HD"
    UHD1 = "UHD1"


class LicenseKind(str, Enum):
    TEMPORARY = "temporary"
    PERSISTENT = "persistent"


class RequestKind(str, Enum):
    NEW = "new"
    RENEWAL = "renewal"
    RELEASE = "release"


class PlatformVerification(str, Enum):
    """Classification of the device after attestation."""

    HARDWARE_VERIFIED = "HARDWARE_VERIFIED"
    SOFTWARE_VERIFIED = "SOFTWARE_VERIFIED"
    TAMPERED = "TAMPERED"
    UNVERIFIED = "UNVERIFIED"  # valid chain and signature, but no attestation evidence: software-only


@dataclass(frozen=True)
class Evidence:
    """Attestation evidence, as carried inside the signed challenge."""

    verified_boot: str  # VERIFIED | SELF_SIGNED | UNVERIFIED | FAILED
    bootloader_locked: bool
    root_indicators: tuple[str, ...]
    app_package: str
    app_signing_digest: bytes
    app_recognized: bool
    nonce: bytes
    timestamp: int
    os_patch_level: int
    from_tee: bool


@dataclass(frozen=True)
class DeviceClaims:
    """What the challenge says about the device, before anything is verified."""

    certificate_chain: bytes  # dialect-specific serialized chain
    signed_payload: bytes  # the bytes the device signature covers
    signature: bytes
    evidence: Evidence | None
    max_hdcp: Hdcp
    client_info: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class LicenseChallenge:
    """A parsed license request in neutral form."""

    system: str  # "widevine", "fairplay", "playready", "clearkey"
    kind: RequestKind
    license_kind: LicenseKind
    content_id: str | None
    key_ids: tuple[bytes, ...]
    # Unique per challenge, the replay-detection key; None where the dialect carries no nonce of the
    # client's (Clear Key), so there is nothing a replay could repeat and nothing to remember.
    request_id: bytes | None
    request_time: int
    device: DeviceClaims | None
    # RENEWAL and RELEASE: the license they refer to, and the MAC over the payload.
    existing_license_id: str | None = None
    signature: bytes = b""
    signed_payload: bytes = b""
    # Opaque application data the client passed through (PlayReady CustomData), for the token/policy layer.
    custom_data: str | None = None
    # A playback's identity across re-acquired licenses, where the dialect's stream heartbeat is a new
    # license (FairPlay: the SPC's playback id; PlayReady: "", the device and title); None: not a re-acquiring
    # dialect (a Widevine-style heartbeat is a RENEWAL naming its license).
    playback_id: str | None = None


@dataclass(frozen=True)
class VerifiedDevice:
    """A device whose certificate chain, signature and evidence were checked."""

    device_id: str  # hex serial number of the device certificate
    system_id: int
    model: str
    security_level: SecurityLevel
    verification: PlatformVerification
    max_hdcp: Hdcp
    public_key: bytes

    @property
    def robustness(self) -> Robustness:
        return Robustness.of_level(self.security_level)


@dataclass(frozen=True)
class TrackKey:
    """A content key of the catalog with the requirements its track carries."""

    kid: bytes
    key: bytes
    track: Track
    robustness: Robustness
    hdcp: Hdcp


@dataclass(frozen=True)
class LicensePolicy:
    """Durations are seconds; 0 means unlimited (as in Widevine's Policy)."""

    can_play: bool = True
    can_persist: bool = False
    can_renew: bool = False
    rental_duration: int = 0
    playback_duration: int = 0
    license_duration: int = 0
    renewal_recovery_duration: int = 0
    renewal_delay: int = 0
    renewal_retry_interval: int = 0
    play_start_grace_period: int = 0
    soft_enforce_playback: bool = False
    soft_enforce_rental: bool = False
    lease_duration: int = 0  # FairPlay-style lease (seconds; 0 = none); never with persistence
    renewal_server_url: str = ""  # where renewals go ("": the license URL), Widevine Policy field 8
    renew_with_usage: bool = False  # renewals carry usage (Widevine Policy field 11)

    def as_dict(self) -> dict[str, int | bool | str]:
        return dict(self.__dict__)

    def __getitem__(self, name: str) -> int | bool | str:
        """Read a field by its stored JSON name (``policy["rental_duration"]``), for API and test callers."""
        if name not in self.__dataclass_fields__:
            raise KeyError(name)
        value: int | bool | str = getattr(self, name)
        return value

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LicensePolicy:
        """The typed policy from its stored JSON form (unknown keys are ignored, missing ones default)."""
        known = cls.__dataclass_fields__
        return cls(**{name: value for name, value in data.items() if name in known})  # type: ignore[arg-type]

    def deadline(self, license_start: int) -> int | None:
        """When the license ends: ``license_start`` + min(non-zero rental, license duration); None if unlimited.

        The one place this rule is written: the lifecycle, the caps, the admin API and
        the codecs that carry an end date all ask here.
        """
        durations = [d for d in (self.rental_duration, self.license_duration) if d]
        return license_start + min(durations) if durations else None


@dataclass(frozen=True)
class Grant:
    """The core's decision to issue a license."""

    license_id: str
    content_id: str
    kind: LicenseKind
    keys: tuple[TrackKey, ...]
    policy: LicensePolicy
    issued_at: int
    device: VerifiedDevice | None
    version: int = 1
    notes: tuple[str, ...] = field(default_factory=tuple)
