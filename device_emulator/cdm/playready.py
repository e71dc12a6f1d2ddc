"""The device's PlayReady-style CDM: SOAP challenges, license binding, reports.

Uses the server's own codecs (``license_server.protocols.playready``), so the
two sides cannot disagree on a format. Network I/O lives in
``device_emulator.acquire_playready``.

Binding rules (a license is refused, and nothing is stored, when one fails):

* every XMR license's ECC device key is this device's encryption key, its
  keys ElGamal-decrypt and its AES-CMAC verifies (``LICENSE_NOT_BOUND`` /
  ``LICENSE_TAMPERED``); all licenses of a response share one rights id;
* the response's LicenseNonce is the pending request's, bound by the
  NonceBinding MAC (``LICENSE_MISMATCH``: a replayed response);
* the license's minimum security level is not above the device's
  (``SECURITY_LEVEL_TOO_LOW``), and it has not already expired (``LICENSE_EXPIRED``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from device_emulator.cdm.base import Cdm, Link, Outgoing, Persisted
from device_emulator.cdm.playready_identity import Identity, open_identity
from device_emulator.device import Device
from device_emulator.errors import CdmError, TeeError, TransportError
from device_emulator.license_store import StoredLicense
from device_emulator.tee import KeyInfo
from license_server import crypto
from license_server.core.model import Evidence, Hdcp, LicenseKind
from license_server.errors import DrmError
from license_server.keyring import Keyring, load_keyring
from license_server.protocols.common import attestation_nonce
from license_server.protocols.playready import PROTOCOLS_NS, SYSTEM, faults, reports, soap, wrmheader, xmr
from license_server.protocols.playready import challenge as challenge_codec

DEFAULT_HEADER_VERSION = "4.3.0.0"
SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"
log = logging.getLogger(__name__)


def soap_action(operation: str) -> dict[str, str]:
    """The SOAPAction header of a PlayReady operation (AcquireLicense, a report, ...)."""
    return {"SOAPAction": f'"{PROTOCOLS_NS}/{operation}"'}


@dataclass(frozen=True)
class PendingLicense:
    body: bytes
    license_nonce: bytes
    kind: LicenseKind
    content_id: str
    kids: tuple[bytes, ...]


@dataclass(frozen=True)
class PendingReport:
    operation: str
    body: bytes
    license_id: str
    nonce: bytes


@dataclass(frozen=True)
class LoadedLicense:
    handle: int
    license: xmr.XmrLicense = field(repr=False)
    data: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    keys: tuple[KeyInfo, ...]
    transaction_id: bytes | None = None

    @property
    def license_id(self) -> str:
        return self.license.license_id

    @property
    def kind(self) -> LicenseKind:
        return LicenseKind.PERSISTENT if self.license.persistent else LicenseKind.TEMPORARY

    @property
    def platform_verification(self) -> str:
        return self.license.platform_verification or "UNVERIFIED"

    @property
    def license_start(self) -> int:
        """The start of the storage window: the issue date (the begin date is :attr:`not_before`)."""
        return self.license.issue_date

    @property
    def not_before(self) -> int | None:
        return self.license.begin or None

    @property
    def expires_at(self) -> int:
        """The end of the license (the earlier of the end date and the removal date; 0: open)."""
        dates = [d for d in (self.license.end, self.license.removal_date) if d]
        return min(dates) if dates else 0

    def policy(self) -> dict:
        """The neutral policy keys (as the Widevine-style CDM reports them) the offline player enforces."""
        lic = self.license
        window = self.expires_at - lic.issue_date if self.expires_at else 0
        return {
            "can_play": lic.play_right, "can_persist": lic.persistent, "can_renew": False,
            "rental_duration": window if lic.persistent else 0,
            "playback_duration": lic.expire_after_first_play,
            "license_duration": 0 if lic.persistent else window,
            "renewal_recovery_duration": 0, "renewal_delay": 0, "renewal_retry_interval": 0,
            "play_start_grace_period": 0, "soft_enforce_playback": False, "soft_enforce_rental": False,
            "renewal_server_url": "",
        }

    def details(self) -> dict:
        """The XMR objects the neutral policy has no key for."""
        lic = self.license
        opl = lic.output_protection
        return {
            "min_security_level": lic.min_security_level, "begin": lic.begin, "end": lic.end,
            "real_time_expiration": lic.real_time_expiration, "removal_date": lic.removal_date,
            "output_protection": opl.__dict__ if opl else None,
        }


class PlayReadyCdm(Cdm):
    """``header_version``: the WRMHEADER version of the content headers it builds challenges for."""

    system = SYSTEM

    def __init__(self, device: Device, keyring: Keyring | None = None, *,
                 header_version: str = DEFAULT_HEADER_VERSION) -> None:
        super().__init__(device)
        self._keyring = keyring
        self.header_version = header_version
        self._identity: Identity | None = None

    @property
    def keyring(self) -> Keyring:
        if self._keyring is None:
            self._keyring = load_keyring()
        return self._keyring

    @property
    def identity(self) -> Identity:
        if self._identity is None:
            try:
                self._identity = open_identity(self.device, self._keyring)
            except TeeError as exc:
                raise CdmError(exc.code, exc.message) from exc
        return self._identity

    @property
    def security_level(self) -> int:
        return self.identity.security_level

    # ---------------------------------------------------------------- header

    def content_header(self, content_id: str, *, version: str = DEFAULT_HEADER_VERSION,
                       key_ids: tuple[bytes, ...] | None = None, algid: str | None = wrmheader.AESCTR) -> bytes:
        """The content's PlayReady Object, as a packager would write it from the catalog."""
        title = self.keyring.catalog.title(content_id)
        if title is None:
            raise CdmError("CONTENT_NOT_FOUND", f"{content_id!r} is not in the catalog")
        tracks = [t for t in title.tracks if key_ids is None or t.kid in key_ids]
        if version in ("4.0.0.0", "4.1.0.0"):
            tracks = tracks[:1]
        if version != "4.3.0.0":
            algid = wrmheader.AESCTR
        keys = tuple(wrmheader.HeaderKey(t.kid, algid, wrmheader.kid_checksum(t.kid, t.key, algid)) for t in tracks)
        return wrmheader.build_pro(wrmheader.build_wrmheader(wrmheader.WrmHeader(version, keys)))

    # ------------------------------------------------------------- challenge

    def build_challenge(self, content_id: str, kind: LicenseKind, *, pro: bytes | None = None,
                        header_version: str | None = None) -> PendingLicense:
        """A signed AcquireLicense request for the content's WRMHEADER (read from its PRO)."""
        version = header_version or self.header_version
        pro = pro if pro is not None else self.content_header(content_id, version=version)
        try:
            header_xml = wrmheader.parse_pro(pro)
            header = wrmheader.parse_wrmheader(header_xml)
        except DrmError as exc:
            raise CdmError("MALFORMED_HEADER", exc.message) from exc
        now, nonce = self.device.now(), crypto.random_bytes(16)
        identity = self.identity
        playready = self.keyring.playready
        if playready is None or not playready.server_public_key:
            raise CdmError("NOT_PROVISIONABLE", "keys/ has no PlayReady license server key")
        body = challenge_codec.build_challenge(
            header_xml=header_xml, header_version=header.version, license_nonce=nonce, client_time=now,
            chain=identity.chain, server_public_key=playready.server_public_key, sign=identity.holder.sign,
            signing_public_key=identity.holder.public_key,
            extra_xml=challenge_codec.emulator_data(soap.evidence_xml(self._evidence(nonce, now)),
                                                    Hdcp(self.device.record.max_hdcp)),
            custom_data=soap.PERSISTENT_HINT if kind is LicenseKind.PERSISTENT else None,
        )
        return PendingLicense(body, nonce, kind, content_id, header.kids)

    def _evidence(self, request_id: bytes, now: int) -> Evidence:
        """On L1 the TEE reports the root of trust; on L3 these are software claims."""
        record = self.device.record
        flags = record.flags
        return Evidence(
            verified_boot="SELF_SIGNED" if flags.bootloader_unlocked else "VERIFIED",
            bootloader_locked=not flags.bootloader_unlocked,
            root_indicators=("su_binary", "magisk") if flags.rooted else (),
            app_package=record.app_package, app_signing_digest=bytes.fromhex(record.app_signing_digest),
            app_recognized=not flags.tampered_app, nonce=attestation_nonce(request_id), timestamp=now,
            os_patch_level=record.os_patch_level, from_tee=self.identity.holder.hardware_backed,
        )

    # --------------------------------------------------------------- license

    def process_license(self, pending: PendingLicense, reply: bytes) -> LoadedLicense:
        """Verify and bind the license answering ``pending``; raise CdmError if refused."""
        response = self._license_response(reply)
        if response.client_info is not None:
            info = ", ".join(f"{k}={v}" for k, v in response.client_info.items())
            raise CdmError("NO_LICENSE", f"the server answered with client information instead of a license: {info}")
        if not response.licenses:
            raise CdmError("UNEXPECTED_REPLY", "the response holds no license")
        loaded = self._load(b"".join(response.licenses), transaction_id=response.transaction_id)
        lic = loaded.license
        try:
            if (response.license_nonce is None or response.binding is None
                    or not crypto.constant_time_equal(response.license_nonce, pending.license_nonce)
                    or not self.identity.holder.verify_nonce_binding(
                        loaded.handle, pending.license_nonce, loaded.data, response.binding)):
                raise CdmError("LICENSE_MISMATCH", "the response's LicenseNonce is not this request's (replayed)")
            if lic.end and lic.end <= self.device.now():
                raise CdmError("LICENSE_EXPIRED", "the license has already expired")
        except CdmError:
            self.close(loaded)
            raise
        return loaded

    def load_stored(self, stored: StoredLicense) -> LoadedLicense:
        """Load a stored persistent license again (offline): binding and signature, no nonce."""
        if stored.system != SYSTEM:
            raise CdmError("WRONG_SYSTEM", f"license {stored.key_set_id} is a {stored.system} license")
        return self._load(stored.license_msg)

    def _load(self, data: bytes, *, transaction_id: bytes | None = None) -> LoadedLicense:
        """``data``: the response's XMR licenses back to back (one per content key)."""
        try:
            parsed = [xmr.decode(one) for one in xmr.split(data)]
        except DrmError as exc:
            raise CdmError("MALFORMED_REPLY", exc.message) from exc
        if not parsed:
            raise CdmError("MALFORMED_REPLY", "no XMR license")
        lic = parsed[0].license
        if any(p.license.rights_id != lic.rights_id for p in parsed):
            raise CdmError("MALFORMED_REPLY", "the licenses of one response must share a rights id")
        level = max(p.license.min_security_level for p in parsed)
        if level > self.security_level:
            raise CdmError("SECURITY_LEVEL_TOO_LOW", f"the license needs SL{level}; "
                                                     f"this device is SL{self.security_level}")
        holder = self.identity.holder
        try:
            handle = holder.load(parsed)
        except TeeError as exc:
            raise CdmError(exc.code, exc.message) from exc
        lic = replace(lic, min_security_level=level, keys=tuple(k for p in parsed for k in p.license.keys))
        return LoadedLicense(handle, lic, data, parsed[0].signature, holder.key_info(handle), transaction_id)

    def wire(self, pending: PendingLicense | PendingReport) -> Outgoing:
        operation = pending.operation if isinstance(pending, PendingReport) else "AcquireLicense"
        return Outgoing(pending.body, SOAP_CONTENT_TYPE, soap_action(operation))

    @property
    def holder(self):
        return self.identity.holder

    def persisted(self, pending: PendingLicense, loaded: LoadedLicense) -> Persisted:
        """The XMR license itself (its keys stay encrypted to the device key inside it)."""
        return Persisted(1, pending.body, loaded.data, loaded.signature, b"", loaded.license_start)

    def settle(self, link: Link, pending: PendingLicense, loaded: LoadedLicense) -> None:
        """Answer the server's acknowledgement request, if any; the license is bound and stored regardless."""
        if loaded.transaction_id is None:
            return
        ack = self.build_acknowledgement(loaded)
        outgoing = self.wire(ack)
        try:
            reply = link.post(outgoing.body, content_type=outgoing.content_type, headers=outgoing.headers)
            self.process_report_answer(ack, reply.body)
        except (CdmError, TransportError) as exc:
            log.warning("license %s: acknowledgement failed: %s", loaded.license_id, exc)

    def export_content_keys(self, loaded: LoadedLicense) -> dict[bytes, bytes]:
        try:
            return self.identity.holder.export_content_keys(loaded.handle)
        except TeeError as exc:
            raise CdmError(exc.code, exc.message) from exc

    def close(self, loaded: LoadedLicense) -> None:
        self.identity.holder.close(loaded.handle)

    @staticmethod
    def _license_response(reply: bytes) -> soap.LicenseResponse:
        try:
            fault = faults.parse_fault(reply)
            if fault is not None:
                raise CdmError(fault.error_code or f"0x{fault.status_code:08x}", fault.message)
            return soap.parse_license_response(reply)
        except DrmError as exc:
            raise CdmError("MALFORMED_REPLY", exc.message) from exc

    # --------------------------------------------------------------- reports

    def _report(self, report: reports.Report) -> PendingReport:
        signed = reports.build_signed_element(report)
        body = reports.build_request(report.operation, signed, self.identity.holder.sign(signed.encode("utf-8")))
        return PendingReport(report.operation, body, report.license_id, report.nonce)

    def _common(self) -> dict:
        return {"client_time": self.device.now(), "nonce": crypto.random_bytes(16),
                "certificate_chain": self.identity.chain}

    def build_acknowledgement(self, loaded: LoadedLicense, *, result: int = 0) -> PendingReport:
        return self._report(reports.Report(operation=reports.ACK, license_id=loaded.license_id, kids=(),
                                           transaction_id=loaded.transaction_id or b"", result=result,
                                           **self._common()))

    def build_secure_stop(self, license_id: str, kids: tuple[bytes, ...], *, start: int, stop: int) -> PendingReport:
        return self._report(reports.Report(operation=reports.SECURE_STOP, license_id=license_id, kids=kids,
                                           playback_start=start, playback_stop=stop, **self._common()))

    def build_secure_delete(self, license_id: str, kids: tuple[bytes, ...], *,
                            deleted_at: int | None = None) -> PendingReport:
        common = self._common()
        return self._report(reports.Report(operation=reports.SECURE_DELETE, license_id=license_id, kids=kids,
                                           deleted_at=deleted_at if deleted_at is not None else common["client_time"],
                                           **common))

    def process_report_answer(self, pending: PendingReport, reply: bytes) -> reports.ReportAnswer:
        """The server's answer to ``pending``; only a matching answer lets the device purge."""
        try:
            fault = faults.parse_fault(reply)
            if fault is not None:
                raise CdmError(fault.error_code or f"0x{fault.status_code:08x}", fault.message)
            answer = reports.parse_answer(pending.operation, reply)
        except DrmError as exc:
            raise CdmError("MALFORMED_REPLY", exc.message) from exc
        if answer.license_id != pending.license_id or not crypto.constant_time_equal(answer.nonce, pending.nonce):
            raise CdmError("LICENSE_MISMATCH", "the answer is for another report")
        return answer
