"""The device's W3C Clear Key client (the key system every EME browser ships).

Clear Key has **no device identity**: a request is only the key ids and the
session type (``{"kids": [...], "type": "temporary" | "persistent-license"}``),
with no certificate, no attestation and no signature, and the license is a
JSON Web Key set whose key values the application can read. So the server
cannot tell this device from any other client, and nothing here is bound to
the device: a stored Clear Key license is the keys themselves. The emulator
supports it for what it is, the baseline of EME testing.

The key ids come from the content's catalog entry, as a player reads them from
the PSSH boxes (or ``default_KID``) of the init segment. Clear Key licenses
carry no license id, so the device names one after the JWK set it received.
Both EME session types are allowed, ``persistent-license`` included, as the
W3C specification defines them; a persistent license is released with the
``{"kids": [...]}`` release message.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from device_emulator.cdm.base import Cdm, Outgoing, Persisted
from device_emulator.device import Device
from device_emulator.errors import CdmError, TeeError
from device_emulator.tee import KeyInfo
from license_server.core.model import Hdcp, LicenseKind, Robustness
from license_server.crypto import cenc
from license_server.keyring import Keyring, load_keyring
from license_server.protocols import clearkey as codec

SYSTEM = codec.SYSTEM
CONTENT_TYPE = "application/json"
_SESSION_TYPES = {LicenseKind.TEMPORARY: codec.SessionType.TEMPORARY,
                  LicenseKind.PERSISTENT: codec.SessionType.PERSISTENT_LICENSE}


class ClearKeySessions:
    """Clear Key's key holder: plain memory, the application can read every key (no TEE is involved)."""

    hardware_backed = False

    def __init__(self) -> None:
        self._sessions: dict[int, tuple[dict[bytes, bytes], tuple[KeyInfo, ...]]] = {}
        self._ids = itertools.count(1)

    def open(self, keys: dict[bytes, bytes], info: tuple[KeyInfo, ...]) -> int:
        handle = next(self._ids)
        self._sessions[handle] = (dict(keys), info)
        return handle

    def key_info(self, handle: int) -> tuple[KeyInfo, ...]:
        return self._session(handle)[1]

    def export_content_keys(self, handle: int) -> dict[bytes, bytes]:
        return dict(self._session(handle)[0])

    def decrypt_samples(self, handle: int, kid: bytes, samples: Sequence[cenc.ProtectedSample]) -> list[bytes]:
        key = self._session(handle)[0].get(kid)
        if key is None:
            raise TeeError("KEY_NOT_LOADED", f"key {kid.hex()} is not loaded")
        try:
            return [cenc.decrypt_sample(key, sample) for sample in samples]
        except cenc.CencError as exc:
            raise TeeError("DECRYPT_FAILED", str(exc)) from exc

    def close(self, handle: int) -> None:
        self._sessions.pop(handle, None)

    def _session(self, handle: int) -> tuple[dict[bytes, bytes], tuple[KeyInfo, ...]]:
        try:
            return self._sessions[handle]
        except KeyError as exc:
            raise TeeError("SESSION_CLOSED", "the license session is closed") from exc


@dataclass(frozen=True)
class PendingRequest:
    body: bytes
    kids: tuple[bytes, ...]
    kind: LicenseKind
    content_id: str


@dataclass(frozen=True)
class LoadedLicense:
    """A JWK set loaded in a :class:`ClearKeySessions` session."""

    handle: int
    data: bytes = field(repr=False)
    kind: LicenseKind
    keys: tuple[KeyInfo, ...]
    received_at: int
    platform_verification: str = "UNVERIFIED"  # no device identity: nothing was verified

    @property
    def license_id(self) -> str:
        return license_id_of(self.data)

    def policy(self) -> dict[str, Any]:
        """A JWK set carries no durations: the neutral policy with no window (0: unlimited)."""
        persistent = self.kind is LicenseKind.PERSISTENT
        return {
            "can_play": True, "can_persist": persistent, "can_renew": False, "rental_duration": 0,
            "playback_duration": 0, "license_duration": 0, "renewal_recovery_duration": 0, "renewal_delay": 0,
            "renewal_retry_interval": 0, "play_start_grace_period": 0, "soft_enforce_playback": False,
            "soft_enforce_rental": False, "renewal_server_url": "",
        }


def license_id_of(jwk_set: bytes) -> str:
    """Clear Key licenses have no id: the device names one after the JWK set it received."""
    return hashlib.sha256(jwk_set).hexdigest()[:32]


class ClearKeyCdm(Cdm):
    system = SYSTEM
    device_identity = False

    def __init__(self, device: Device, keyring: Keyring | None = None) -> None:
        super().__init__(device)
        self._keyring = keyring
        self._holder = ClearKeySessions()

    @property
    def keyring(self) -> Keyring:
        if self._keyring is None:
            self._keyring = load_keyring()
        return self._keyring

    @property
    def holder(self) -> ClearKeySessions:
        return self._holder

    def build_challenge(self, content_id: str, kind: LicenseKind) -> PendingRequest:
        """``{"kids": [...], "type": ...}`` for the content's key ids (no identity, no signature)."""
        title = self.keyring.catalog.title(content_id)
        if title is None:
            raise CdmError("CONTENT_NOT_FOUND", f"{content_id!r} is not in the catalog")
        kids = tuple(t.kid for t in title.tracks)
        body = codec.build_license_request(list(kids), _SESSION_TYPES[kind])
        return PendingRequest(body, kids, kind, content_id)

    def wire(self, pending: PendingRequest) -> Outgoing:
        return Outgoing(pending.body, CONTENT_TYPE)

    def process_license(self, pending: PendingRequest, answer: bytes) -> LoadedLicense:
        """Accept a JWK set holding keys of the requested ids only; CdmError otherwise."""
        keys, kind = self._parse(answer)
        stray = [kid.hex() for kid in keys if kid not in pending.kids]
        if stray:
            raise CdmError("LICENSE_MISMATCH", f"the license holds key ids that were not requested: {', '.join(stray)}")
        return self._load(answer, keys, kind)

    def load_stored(self, license_msg: bytes) -> LoadedLicense:
        """Load a stored JWK set again (it is not bound to the device: Clear Key has no identity)."""
        keys, kind = self._parse(license_msg)
        return self._load(license_msg, keys, kind)

    def persisted(self, pending: PendingRequest, loaded: LoadedLicense) -> Persisted:
        return Persisted(1, pending.body, loaded.data, b"", b"", loaded.received_at)

    def release_message(self, kids: Sequence[bytes]) -> bytes:
        """The W3C release message of a persistent session's keys."""
        return codec.build_release(list(kids))

    @staticmethod
    def release_acknowledged(kids: Sequence[bytes], reply: bytes) -> bool:
        """True if the server's answer lists every released key id."""
        try:
            doc = json.loads(reply.decode("utf-8"))
            acknowledged = {codec.b64url_decode(k) for k in doc["kids"]}
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            return False
        return set(kids) <= acknowledged

    def _parse(self, answer: bytes) -> tuple[dict[bytes, bytes], LicenseKind]:
        try:
            doc = json.loads(answer.decode("utf-8"))
            if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
                error = doc["error"]
                raise CdmError(str(error.get("code", "REFUSED")), str(error.get("message", "refused by the server")))
            keys = codec.parse_license(answer)
            kind = codec.SessionType(doc.get("type", "temporary")).license_kind
        except CdmError:
            raise
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CdmError("MALFORMED_REPLY", "the answer is not a Clear Key JSON Web Key set") from exc
        if not keys:
            raise CdmError("UNEXPECTED_REPLY", "the JWK set carries no key")
        return keys, kind

    def _load(self, data: bytes, keys: dict[bytes, bytes], kind: LicenseKind) -> LoadedLicense:
        info = tuple(KeyInfo(kid, self._track(kid), Robustness.SW_SECURE_CRYPTO, Hdcp.NONE) for kid in keys)
        handle = self._holder.open(keys, info)
        return LoadedLicense(handle, data, kind, info, self.device.now())

    def _track(self, kid: bytes) -> str:
        title = self.keyring.catalog.title_for_kid(kid)
        entry = title.track_for(kid) if title else None
        return entry.track.value if entry else "UNKNOWN"
