"""core/service.py over an in-memory fake of the storage port: the port is all the service needs.

The fake keeps the port's contract (one method = one atomic decision, refusals
raised from inside a write leave nothing written) with plain dicts and lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from license_server.clock import ControlledClock
from license_server.core import entitlements
from license_server.core.attestation import AttestationRules, CertifiedKey, ModelInfo, attestation_nonce
from license_server.core.entitlements import DEVELOPMENT_DEFAULT, Entitlement
from license_server.core.model import (
    DeviceClaims,
    Evidence,
    Grant,
    Hdcp,
    LicenseChallenge,
    LicenseKind,
    LicensePolicy,
    RequestKind,
    SecurityLevel,
)
from license_server.core.policy import PolicyOverrides
from license_server.core.ports import (
    DownloadRecord,
    Holder,
    LicenseRecord,
    LicenseRepository,
    TokenSpend,
    UsageRules,
    UsageSnapshot,
)
from license_server.core.service import DeviceReport, LicenseService, ReportKind
from license_server.errors import DrmError, ErrorCode
from license_server.keyring import default_keys_dir, load_keyring
from license_server.revocations import RevocationList
from license_server.rights import Rights
from license_server.store import Store

NOW = 1_800_000_000


@dataclass
class MemoryRepository:
    """The storage port in memory."""

    licenses: dict[str, LicenseRecord] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen_requests: set[str] = field(default_factory=set)
    tokens: dict[str, str] = field(default_factory=dict)
    reports: set[tuple[str, str]] = field(default_factory=set)
    report_subjects: set[tuple[str, str]] = field(default_factory=set)
    downloads: list[DownloadRecord] = field(default_factory=list)
    audit: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # (event, license, code)

    def record_grant(self, grant: Grant, *, system: str, request_key: str, secrets: dict[str, str], now: int,
                     holder: Holder | None = None, caps: UsageRules | None = None,
                     stream: object | None = None) -> None:
        assert stream is None, "these tests grant without stream limits (tests/test_streams.py covers them)"
        holder = holder or Holder()
        if request_key in self.seen_requests:
            raise DrmError(ErrorCode.REPLAYED_CHALLENGE, "seen")
        if holder.token_jti is not None and holder.token_jti in self.tokens:
            raise DrmError(ErrorCode.TOKEN_REUSED, "spent")
        if caps is not None and grant.device is not None:
            entitlements.check_usage(caps, self._snapshot(grant.device.device_id, now))
        self.seen_requests.add(request_key)
        if holder.token_jti is not None:
            self.tokens[holder.token_jti] = grant.license_id
        device = grant.device
        if device is not None:
            self.devices[device.device_id] = {"device_id": device.device_id, "system": system,
                                              "system_id": device.system_id}
        self.licenses[grant.license_id] = LicenseRecord(
            license_id=grant.license_id, system=system, device_id=device.device_id if device else None,
            content_id=grant.content_id, kind=grant.kind.value, state="issued", version=grant.version,
            kids=[k.kid.hex() for k in grant.keys], tracks=[k.track.value for k in grant.keys],
            policy=grant.policy, issued_at=grant.issued_at, updated_at=now, released_at=None, secrets=secrets,
            license_start=grant.issued_at, account=holder.account, tier=holder.tier, token_jti=holder.token_jti,
        )
        self.audit.append(("grant", grant.license_id, None))

    def _snapshot(self, device_id: str, now: int) -> UsageSnapshot:
        active = [r for r in self.licenses.values()
                  if r.kind == "persistent" and r.state in entitlements.ACTIVE_STATES and r.device_id == device_id
                  and entitlements.slot_end(r.policy, r.license_start) > now]
        return UsageSnapshot(len(active), frozenset(), len(active))

    def record_refusal(self, error: DrmError, *, system: str, device_id: str | None, content_id: str | None,
                       license_id: str | None = None, now: int) -> None:
        self.audit.append(("refusal", license_id, error.code.value))

    def record_lifecycle(self, license_id: str, *, event: str, state: str, now: int, system: str,
                         version: int | None = None, license_start: int | None = None,
                         policy: LicensePolicy | None = None, first_used_at: int | None = None,
                         released: bool = False, message: str | None = None,
                         request_key: str | None = None, stream_heartbeat: bool = False) -> None:
        if request_key is not None:
            if request_key in self.seen_requests:
                raise DrmError(ErrorCode.REPLAYED_CHALLENGE, "seen")
            self.seen_requests.add(request_key)
        record = self.licenses[license_id]
        self.licenses[license_id] = replace(
            record, state=state, updated_at=now, version=version or record.version,
            license_start=license_start or record.license_start, policy=policy or record.policy,
            first_used_at=record.first_used_at or first_used_at,
            released_at=(record.released_at or now) if released else record.released_at)
        self.audit.append((event, license_id, None))

    def mark_released(self, license_id: str, *, now: int, system: str, reason: str,
                      request_key: str | None = None) -> bool:
        if request_key is not None:
            if request_key in self.seen_requests:
                return False
            self.seen_requests.add(request_key)
        if self.licenses[license_id].state == "released":
            return False
        self.record_lifecycle(license_id, event="release", state="released", now=now, system=system, released=True)
        return True

    def release_by_key_ids(self, kids: list[bytes], *, system: str, now: int) -> list[str]:
        wanted = {kid.hex() for kid in kids}
        hits = [r.license_id for r in self.licenses.values()
                if r.system == system and r.state == "issued" and wanted & set(r.kids)]
        for license_id in hits:
            self.record_lifecycle(license_id, event="release", state="released", now=now, system=system, released=True)
        return hits

    def record_report(self, license_id: str, *, system: str, event: str, report_key: str, now: int,
                      message: str, once_key: str | None = None, first_used_at: int | None = None) -> bool:
        if (license_id, report_key) in self.reports:
            raise DrmError(ErrorCode.REPLAYED_CHALLENGE, "this report was already received")
        if once_key is not None:
            if (license_id, once_key) in self.report_subjects:
                return False
            self.report_subjects.add((license_id, once_key))
        self.reports.add((license_id, report_key))
        self.record_lifecycle(license_id, event=event, state=self.licenses[license_id].state, now=now, system=system,
                              first_used_at=first_used_at, message=message)
        return True

    def record_download(self, download: DownloadRecord, *, token: TokenSpend | None = None) -> None:
        if token is not None:
            spent_on = self.tokens.get(token.jti)
            if spent_on is not None and not (token.same_license_ok and spent_on == token.license_id):
                raise DrmError(ErrorCode.TOKEN_REUSED, "spent")
            self.tokens[token.jti] = token.license_id
        self.downloads.append(download)
        self.audit.append(("download", download.license_id, None))

    def license(self, license_id: str) -> LicenseRecord | None:
        return self.licenses.get(license_id)

    def device(self, device_id: str) -> dict[str, Any] | None:
        return self.devices.get(device_id)

    def token_spent_on(self, jti: str) -> str | None:
        return self.tokens.get(jti)


class FakeTrust:
    """Chains are ``system_id:device_id``; a signature is valid when it equals b"ok"."""

    def verify_chain(self, chain: bytes, *, now: int) -> CertifiedKey:
        system_id, device_id = chain.decode().split(":")
        return CertifiedKey(device_id, int(system_id), b"pub")

    def verify_signature(self, public_key: bytes, payload: bytes, signature: bytes) -> None:
        if signature != b"ok":
            raise DrmError(ErrorCode.SIGNATURE_INVALID, "bad signature")


class FixedRights:
    def __init__(self, rights: Rights) -> None:
        self.rights = rights

    def current(self) -> Rights:
        return self.rights


APP = ("com.example.player", b"\xaa" * 32)
RULES = AttestationRules(models={4464: ModelInfo("phone", 4464, SecurityLevel.L1)})


@pytest.fixture
def store() -> MemoryRepository:
    return MemoryRepository()


@pytest.fixture
def service(store: MemoryRepository, tmp_path: Path) -> LicenseService:
    keyring = load_keyring(default_keys_dir())
    from license_server.core.attestation import GenuineApp

    rules = replace(RULES, genuine_apps=(GenuineApp(*APP),))
    repository: LicenseRepository = store  # the fake satisfies the port protocol
    return LicenseService(keyring=keyring, store=repository, clock=ControlledClock(NOW, frozen=True),
                          revocations=RevocationList(Store.memory()), rules=rules,
                          rights=FixedRights(Rights(max_active_downloads_per_device=2)))  # type: ignore[arg-type]


def challenge(n: int = 1, *, kind: LicenseKind = LicenseKind.TEMPORARY, device: str = "d1",
              signature: bytes = b"ok") -> LicenseChallenge:
    request_id = n.to_bytes(16, "big")
    evidence = Evidence("VERIFIED", True, (), APP[0], APP[1], True, attestation_nonce(request_id), NOW, 202601, True)
    claims = DeviceClaims(f"4464:{device}".encode(), b"payload", signature, evidence, Hdcp.V2_2)
    return LicenseChallenge("widevine", RequestKind.NEW, kind, "demo-movie", (), request_id, NOW, claims)


def follow_up(kind: RequestKind, license_id: str, n: int = 100) -> LicenseChallenge:
    return LicenseChallenge("widevine", kind, LicenseKind.TEMPORARY, None, (), n.to_bytes(16, "big"), NOW, None,
                            existing_license_id=license_id, signature=b"mac", signed_payload=b"p")


def encode(grant: Grant) -> tuple[bytes, dict[str, str]]:
    return f"license {grant.license_id} v{grant.version}".encode(), {"mac": "00"}


def acquire(service: LicenseService, request: LicenseChallenge, overrides: PolicyOverrides = PolicyOverrides(),
            ) -> str:
    body = service.acquire(request, trust=FakeTrust(), overrides=overrides, build=encode)
    return body.decode().split()[1]


def accept(record: LicenseRecord) -> None:
    """A codec's holder check that always passes."""


def codes(store: MemoryRepository) -> list[str | None]:
    return [code for event, _, code in store.audit if event == "refusal"]


def test_a_grant_is_recorded_with_one_port_call_and_the_policy_stays_typed(service, store):
    license_id = acquire(service, challenge())
    record = store.licenses[license_id]
    assert isinstance(record.policy, LicensePolicy) and record.kind == "temporary" and record.secrets == {"mac": "00"}
    assert store.devices["d1"]["system_id"] == 4464 and store.audit == [("grant", license_id, None)]


def test_a_replayed_challenge_is_refused_by_the_port_and_audited_once(service, store):
    acquire(service, challenge(7))
    with pytest.raises(DrmError) as caught:
        acquire(service, challenge(7))
    assert caught.value.code is ErrorCode.REPLAYED_CHALLENGE
    assert len(store.licenses) == 1 and codes(store) == ["REPLAYED_CHALLENGE"]


def test_attestation_refusals_are_audited_and_record_nothing(service, store):
    with pytest.raises(DrmError):
        acquire(service, challenge(signature=b"forged"))
    assert not store.licenses and codes(store) == ["SIGNATURE_INVALID"]


def test_the_caps_are_decided_inside_the_grant_write(service, store):
    persist = PolicyOverrides(persist=True)
    acquire(service, challenge(1, kind=LicenseKind.PERSISTENT), persist)
    acquire(service, challenge(2, kind=LicenseKind.PERSISTENT), persist)
    with pytest.raises(DrmError) as caught:
        acquire(service, challenge(3, kind=LicenseKind.PERSISTENT), persist)
    assert caught.value.code is ErrorCode.DOWNLOAD_LIMIT_REACHED and len(store.licenses) == 2


def test_a_single_use_token_buys_one_license(service, store, monkeypatch):
    token = Entitlement(source="token", account="alice", jti="jti-1", expires_at=NOW + 60)
    monkeypatch.setattr(service, "entitlement", lambda access, now: token)
    acquire(service, challenge(1))
    with pytest.raises(DrmError) as caught:
        acquire(service, challenge(2))
    assert caught.value.code is ErrorCode.TOKEN_REUSED and len(store.licenses) == 1


def test_renewal_needs_a_renewable_policy_then_bumps_the_version(service, store):
    fixed = acquire(service, challenge(1))
    with pytest.raises(DrmError) as caught:
        service.renew(follow_up(RequestKind.RENEWAL, fixed), verify=accept, build=lambda g: b"")
    assert caught.value.code is ErrorCode.RENEWAL_NOT_ALLOWED
    renewable = acquire(service, challenge(2), PolicyOverrides(can_renew=True))
    body = service.renew(follow_up(RequestKind.RENEWAL, renewable), verify=accept, in_use=True,
                         build=lambda grant: encode(grant)[0])
    assert body.endswith(b"v2") and store.licenses[renewable].version == 2
    assert store.licenses[renewable].state == "renewed"


def test_the_holder_check_runs_before_anything_is_written(service, store):
    license_id = acquire(service, challenge(1), PolicyOverrides(can_renew=True))

    def forged(record: LicenseRecord) -> None:
        raise DrmError(ErrorCode.SIGNATURE_INVALID, "not the holder")

    with pytest.raises(DrmError):
        service.renew(follow_up(RequestKind.RENEWAL, license_id), verify=forged, build=lambda g: b"")
    assert store.licenses[license_id].version == 1 and codes(store) == ["SIGNATURE_INVALID"]


def test_an_unknown_license_is_not_found(service, store):
    with pytest.raises(DrmError) as caught:
        service.release(follow_up(RequestKind.RELEASE, "ff" * 16), verify=accept, build=lambda g: b"")
    assert caught.value.code is ErrorCode.LICENSE_NOT_FOUND


def test_release_is_idempotent(service, store):
    license_id = acquire(service, challenge(1))
    for _ in range(2):
        service.release(follow_up(RequestKind.RELEASE, license_id), verify=accept, build=lambda g: b"ok")
    assert store.licenses[license_id].state == "released"
    assert [event for event, _, _ in store.audit].count("release") == 1


def test_a_license_past_its_deadline_is_expired_on_the_books_then_refused(service, store):
    license_id = acquire(service, challenge(1), PolicyOverrides(can_renew=True))
    service.clock.advance(86400)  # the temporary default: one day
    with pytest.raises(DrmError) as caught:
        service.renew(replace(follow_up(RequestKind.RENEWAL, license_id), request_time=NOW + 86400),
                      verify=accept, build=lambda g: b"")
    assert caught.value.code is ErrorCode.LICENSE_EXPIRED and store.licenses[license_id].state == "expired"


def test_reports_are_deduplicated_by_their_keys(service, store):
    temporary = acquire(service, challenge(1))
    request = follow_up(RequestKind.RELEASE, temporary)
    stop = DeviceReport(ReportKind.SECURE_STOP, report_key="n1", playback=(NOW - 60, NOW))
    assert service.report(request, stop, verify=accept) == "recorded"
    with pytest.raises(DrmError) as caught:
        service.report(request, stop, verify=accept)
    assert caught.value.code is ErrorCode.REPLAYED_CHALLENGE
    resent = replace(stop, report_key="n2")  # the answer was lost: a new nonce, the same playback
    assert service.report(request, resent, verify=accept) == "recorded"
    assert [event for event, _, _ in store.audit].count("secure_stop") == 1
    assert store.licenses[temporary].first_used_at == NOW - 60


def test_acknowledge_and_secure_delete(service, store):
    persistent = acquire(service, challenge(1, kind=LicenseKind.PERSISTENT), PolicyOverrides(persist=True))
    request = follow_up(RequestKind.RELEASE, persistent)
    assert service.report(request, DeviceReport(ReportKind.ACKNOWLEDGE, "a1"), verify=accept) == "acknowledged"
    with pytest.raises(DrmError) as caught:
        service.report(request, DeviceReport(ReportKind.SECURE_STOP, "s1", (NOW, NOW)), verify=accept)
    assert caught.value.code is ErrorCode.UNSUPPORTED_REQUEST
    delete = DeviceReport(ReportKind.SECURE_DELETE, "d1")
    assert service.report(request, delete, verify=accept) == "released"
    assert service.report(request, delete, verify=accept) == "already-released"


def test_secure_delete_reports_persistent_licenses_only(service, store):
    temporary = acquire(service, challenge(1))
    with pytest.raises(DrmError) as caught:
        service.report(follow_up(RequestKind.RELEASE, temporary), DeviceReport(ReportKind.SECURE_DELETE, "x"),
                       verify=accept)
    assert caught.value.code is ErrorCode.UNSUPPORTED_REQUEST


def test_release_by_key_ids_refuses_unknown_kids(service, store):
    with pytest.raises(DrmError) as caught:
        service.release_key_ids("clearkey", (b"\xee" * 16,))
    assert caught.value.code is ErrorCode.KEY_NOT_FOUND


def test_a_download_may_use_the_token_of_its_own_license_only(service, store):
    def download(license_id: str) -> DownloadRecord:
        return DownloadRecord("dl", "d1", "demo-movie", license_id, "alice", "premium", "standard", "cenc", 3, 100,
                              NOW, NOW + 60)

    token = Entitlement(source="token", account="alice", jti="jti-9", expires_at=NOW + 60)
    store.tokens["jti-9"] = "lic-a"
    service.record_download(download("lic-a"), token)
    with pytest.raises(DrmError) as caught:
        service.record_download(download("lic-b"), token)
    assert caught.value.code is ErrorCode.TOKEN_REUSED and len(store.downloads) == 1
    service.record_download(download("lic-b"), DEVELOPMENT_DEFAULT)
    assert len(store.downloads) == 2
