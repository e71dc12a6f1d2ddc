"""Per-dialect adapters of the device's offline lifecycle.

:mod:`device_emulator.lifecycle` is written once for every dialect (the two
clocks, first play, the secure clock, destruction records, sync). What differs
between the dialects sits behind the small :class:`OfflineAdapter` interface:

``load``
    Re-verify a stored license through the TEE (binding to this device,
    signature) and open a TEE session: key infos, the policy as neutral
    values (``rental_duration``, ``playback_duration``, ...), the license start.
``destruction``
    When the keys are destroyed: what must survive to report the destruction
    later (a pre-signed Widevine RELEASE, a FairPlay destruction record, the
    facts of a PlayReady Secure Delete). ``payload`` None means nothing
    reportable survived.
``report_destruction``
    Send that report and verify the server's acknowledgement; only a verified
    acknowledgement lets the device purge its record.
``renew``
    License renewal, where the dialect has one (``renewable``).
``wrap`` / ``playback_report`` / ``report_playback``
    Streaming playback with a temporary license, and the report of its end
    where the dialect has one (PlayReady Secure Stop).

:func:`adapter_for` picks the adapter by the stored license's ``system``,
through the dialect registry (``dialect.load("offline_adapter")``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from device_emulator.errors import CdmError, NotSupported
from device_emulator.media import Decryptor, tee_decryptor
from device_emulator.tee import KeyInfo
from license_server import dialects

if TYPE_CHECKING:
    from device_emulator.device import Device
    from device_emulator.license_store import LicenseStore, StoredLicense


@dataclass(frozen=True)
class OfflineLicense:
    """A stored license, re-verified and loaded in a TEE session (``holder``, ``handle``)."""

    system: str
    handle: int
    holder: Any = field(repr=False)  # the TEE holding the session: key_info, decrypt_samples, close
    keys: tuple[KeyInfo, ...]
    policy: dict[str, Any]
    license_start: int
    not_before: int | None = None
    native: Any = field(default=None, repr=False)  # the dialect CDM's own loaded object

    def decryptor(self) -> Decryptor:
        """Decrypt samples inside the TEE session: the content keys never leave it on L1."""
        return tee_decryptor(self.holder, self.handle)

    def close(self) -> None:
        self.holder.close(self.handle)


@dataclass(frozen=True)
class Destruction:
    """What a destroyed license leaves behind for its report (persisted with the record)."""

    payload: bytes | None
    ack_verifier: bytes | None = None


@dataclass(frozen=True)
class Acknowledgement:
    """The server's verified answer to a destruction report."""

    acknowledged: bool
    detail: str  # released | already-released | not-found | why it does not count


class OfflineAdapter:
    """The dialect's part of the lifecycle; optional features default to "the dialect has none"."""

    system: str = ""
    renewable = False

    def load(self, device: Device, lic: StoredLicense) -> OfflineLicense:
        """Re-verify a stored license in a TEE session; CdmError (LICENSE_NOT_BOUND, ...) if it does not load."""
        raise NotImplementedError

    def wrap(self, device: Device, native: Any, holder: Any) -> OfflineLicense:
        """The neutral view of a license the dialect's CDM just loaded (session owned by the caller)."""
        raise NotImplementedError

    def destruction(self, device: Device, lic: StoredLicense, loaded: OfflineLicense | None,
                    now: int) -> Destruction:
        raise NotImplementedError

    def report_destruction(self, device: Device, record: dict[str, Any], *, server: str, url: str,
                           headers: dict[str, str] | None) -> Acknowledgement:
        """Raises TransportError if unreachable and CdmError (the server's code) if refused."""
        raise NotImplementedError

    def renew(self, device: Device, store: LicenseStore, lic: StoredLicense, loaded: OfflineLicense, *,
              url: str, headers: dict[str, str] | None) -> dict[str, Any]:
        raise no_renewal(self.system)

    def playback_report(self, device: Device, loaded: OfflineLicense, *, start: int, stop: int) -> bytes | None:
        """What to report at the end of a streaming playback (PlayReady Secure Stop); None: nothing."""
        return None

    def report_playback(self, device: Device, record: dict[str, Any], *, server: str, url: str,
                        headers: dict[str, str] | None) -> Acknowledgement:
        raise NotSupported("UNSUPPORTED_REQUEST", f"{self.system} has no end-of-playback report")


def adapter_for(system: str) -> OfflineAdapter:
    """The adapter of a dialect of the registry; NotSupported ``UNSUPPORTED_SYSTEM`` for any other."""
    try:
        dialect = dialects.dialect(system)
    except KeyError:
        raise NotSupported("UNSUPPORTED_SYSTEM", f"no offline support for {system!r} licenses") from None
    adapter: OfflineAdapter = dialect.load("offline_adapter")
    return adapter


def no_renewal(system: str) -> CdmError:
    return NotSupported("RENEWAL_NOT_SUPPORTED", f"{system} offline licenses have no renewal; acquire a new license")
