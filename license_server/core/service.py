"""The neutral pipeline every dialect walks: verify, decide, encode, record.

Dialect handlers parse bytes into a :class:`LicenseChallenge`, call
:meth:`LicenseService.acquire` with a ``build`` function (their codec's encoder
for a :class:`Grant`), and write the returned bytes. The service decides, lets
the codec encode, then records the grant with *one* port call (replay key,
single-use token and caps decided inside that transaction); the bytes are
returned only once the record is durable. Renewals and releases take a
``verify`` function too: the codec's check that the request is signed by the
license holder. Device reports and downloads go through here as well.
Refusals are raised as :class:`DrmError` and audited here, once.

Storage is the core's port (:class:`~license_server.core.ports.LicenseRepository`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from license_server.clock import Clock
from license_server.core import attestation, entitlements, lifecycle, policy, streams
from license_server.core.attestation import AttestationRules, GenuineApp, ModelInfo, TrustAnchor
from license_server.core.entitlements import Access, Entitlement
from license_server.core.freshness import skew_message
from license_server.core.license_ids import new_license_id
from license_server.core.lifecycle import Event, State
from license_server.core.model import Grant, LicenseChallenge, LicenseKind, LicensePolicy, VerifiedDevice
from license_server.core.policy import PolicyOverrides
from license_server.core.ports import DownloadRecord, Holder, LicenseRecord, LicenseRepository, TokenSpend
from license_server.core.streams import StreamStart
from license_server.errors import DrmError, ErrorCode
from license_server.keyring import Keyring, Title
from license_server.revocations import RevocationList
from license_server.rights import Rights, RightsBook
from license_server.tokens import TokenVerifier

log = logging.getLogger(__name__)

# A build callback returns the wire bytes and the secrets to keep with the
# license (e.g. the MAC keys that later verify renewals and releases).
BuildLicense = Callable[[Grant], tuple[bytes, dict[str, str]]]
VerifyHolder = Callable[[LicenseRecord], None]
GrantListener = Callable[[str, str], None]  # (system, license kind), told of every durable grant (metrics)
UNAUDITED = {ErrorCode.MALFORMED_CHALLENGE, ErrorCode.CHALLENGE_TOO_LARGE, ErrorCode.INVALID_POLICY_OVERRIDE}


def attestation_rules(keyring: Keyring, *, allow_compromised: bool = False) -> AttestationRules:
    """Genuine apps and every model any dialect's PKI certifies (see :meth:`Keyring.attestation_models`)."""
    return AttestationRules(
        genuine_apps=tuple(GenuineApp(package, digest) for package, digest in keyring.genuine_apps),
        allow_compromised=allow_compromised,
        models={system_id: ModelInfo(name, system_id, level)
                for name, system_id, level in keyring.attestation_models()},
    )


class ReportKind(str, Enum):
    """A device's signed report about a license it holds (the audit event it records)."""

    ACKNOWLEDGE = "acknowledged"  # the device stored the license
    SECURE_STOP = "secure_stop"  # playback of a non-persistent license ended
    SECURE_DELETE = "secure_delete"  # a persistent license was destroyed


@dataclass(frozen=True)
class DeviceReport:
    """A report, in neutral terms; the dialect's ``verify`` authenticates it against the license."""

    kind: ReportKind
    report_key: str  # unique per report (its nonce): a second copy is a replay
    playback: tuple[int, int] | None = None  # Secure Stop: first and last play time
    storage_result: int = 0  # Acknowledge: the device's storage result code


@dataclass
class Pending:
    """What a grant's walk learned so far: the verified device survives a later refusal (audit, dry run)."""

    device: VerifiedDevice | None = None

    @property
    def device_id(self) -> str | None:
        return self.device.device_id if self.device is not None else None


class LicenseService:
    """Holds the collaborators of the pipeline; one per server."""

    def __init__(
        self,
        *,
        keyring: Keyring,
        store: LicenseRepository,
        clock: Clock,
        revocations: RevocationList,
        rules: AttestationRules,
        rights: RightsBook,
        tokens: TokenVerifier | None = None,
        require_token: bool = False,
        stream_limits: bool = True,
        on_grant: GrantListener | None = None,
    ) -> None:
        self.keyring = keyring
        self.store = store
        self.clock = clock
        self.revocations = revocations
        self.rules = rules
        self.rights = rights
        self.tokens = tokens
        self.require_token = require_token
        self.stream_limits = stream_limits  # False: serve --no-stream-limits (negative testing: no sessions)
        self.on_grant = on_grant

    def entitlement(self, access: Access, now: int) -> Entitlement:
        """The verified token's entitlement; without a token, the development default or a refusal."""
        if access.token is None:
            if self.require_token:
                raise DrmError(ErrorCode.TOKEN_REQUIRED, "send an entitlement token in the X-DRM-Token header")
            return entitlements.DEVELOPMENT_DEFAULT
        if self.tokens is None:
            raise DrmError(ErrorCode.TOKEN_KEY_UNKNOWN, "this server has no entitlement-token keys configured")
        return entitlements.from_claims(self.tokens.verify(access.token, now))

    def acquire(
        self,
        challenge: LicenseChallenge,
        *,
        trust: TrustAnchor | None,
        overrides: PolicyOverrides,
        build: BuildLicense,
        access: Access = Access(),
    ) -> bytes:
        """Walk a NEW request through token, attestation, rights, policy, encoding and the store."""
        now = self.clock.now()
        pending = Pending()
        try:
            grant, body, record = self._decide(challenge, trust, overrides, build, access, now, pending)
            self.store.record_grant(grant, **record)
        except DrmError as error:
            self.refused(error, challenge, device_id=pending.device_id, now=now)
            raise
        self._log_grant(challenge, grant)
        return body

    async def acquire_async(
        self,
        challenge: LicenseChallenge,
        *,
        trust: TrustAnchor | None,
        overrides: PolicyOverrides,
        build: BuildLicense,
        access: Access = Access(),
    ) -> bytes:
        """:meth:`acquire` for the event loop: a group-committing store is awaited, never blocked on."""
        record_async = getattr(self.store, "record_grant_async", None)
        if record_async is None:
            return self.acquire(challenge, trust=trust, overrides=overrides, build=build, access=access)
        now = self.clock.now()
        pending = Pending()
        try:
            grant, body, record = self._decide(challenge, trust, overrides, build, access, now, pending)
            await record_async(grant, **record)
        except DrmError as error:
            log.info("refused %s %s: %s %s", challenge.system, challenge.kind.value, error.code.value, error.message)
            if error.code not in UNAUDITED:
                await self.store.record_refusal_async(  # type: ignore[attr-defined]
                    error, system=challenge.system, device_id=pending.device_id, content_id=challenge.content_id,
                    license_id=challenge.existing_license_id, now=now)
            raise
        self._log_grant(challenge, grant)
        return body

    def _decide(self, challenge: LicenseChallenge, trust: TrustAnchor | None, overrides: PolicyOverrides,
                build: BuildLicense, access: Access, now: int,
                pending: Pending) -> tuple[Grant, bytes, dict[str, Any]]:
        """Everything of a grant but the store write: the grant, its bytes and the record_grant arguments."""
        entitlement = self.entitlement(access, now)
        rights = self.rights.current()
        grant = self.evaluate(challenge, trust=trust, overrides=overrides, access=access, entitlement=entitlement,
                              rights=rights, license_id=new_license_id(now), now=now, pending=pending)
        device = pending.device
        stream = None
        rules = entitlements.stream_rules(rights, entitlement) if self.stream_limits else None
        if rules is not None and grant.kind is LicenseKind.TEMPORARY and device is not None:
            grant = replace(grant, policy=streams.heartbeat_policy(grant.policy, rules))
            playback = challenge.playback_id
            stream = StreamStart(rules, challenge.system, device.device_id, grant.content_id, continuation=None
                                 if playback is None else f"{device.device_id}:{grant.content_id}:{playback}")
        body, secrets = build(grant)
        request_key = (None if challenge.request_id is None
                       else f"{challenge.system}:{device.device_id if device else '-'}:{challenge.request_id.hex()}")
        caps = None
        if grant.kind is LicenseKind.PERSISTENT and device is not None:
            caps = entitlements.usage_rules(rights, entitlement, device.device_id)
        holder = Holder(entitlement.account, entitlement.tier, entitlement.jti, entitlement.expires_at)
        return grant, body, dict(system=challenge.system, request_key=request_key, secrets=secrets, now=now,
                                 holder=holder, caps=caps, stream=stream)

    def evaluate(self, challenge: LicenseChallenge, *, trust: TrustAnchor | None, overrides: PolicyOverrides,
                 access: Access, entitlement: Entitlement, rights: Rights, license_id: str, now: int,
                 pending: Pending) -> Grant:
        """The decision of a NEW request, writing nothing: attestation, rights, policy, revoked keys.

        The grant path and the inspector's dry run both walk exactly this; ``pending.device``
        holds the verified device even when a later step refuses.
        """
        if trust is not None:
            pending.device = attestation.verify(
                challenge, trust=trust, rules=self.rules, revocations=self.revocations.current(), now=now
            )
        device = pending.device
        title = self.resolve_title(challenge)
        title_rights = rights.title(title.content_id)
        kind = policy.requested_kind(challenge, overrides)
        entitlements.authorize(entitlement, content_id=title.content_id, rights=title_rights, kind=kind,
                               device_id=device.device_id if device else None, region_header=access.region)
        grant = policy.decide(
            challenge, device, title, overrides=entitlements.terms(title_rights, entitlement, overrides),
            license_id=license_id, now=now,
        )
        attestation.check_key_ids(tuple(key.kid for key in grant.keys), self.revocations.current())
        return grant

    def _log_grant(self, challenge: LicenseChallenge, grant: Grant) -> None:
        if self.on_grant is not None:
            self.on_grant(challenge.system, grant.kind.value)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "granted %s %s license %s for %s to %s (%s)",
                challenge.system, grant.kind.value, grant.license_id, grant.content_id,
                grant.device.device_id if grant.device else "anonymous", ",".join(k.track.value for k in grant.keys),
            )

    def renew(self, challenge: LicenseChallenge, *, verify: VerifyHolder,
              build: Callable[[Grant], bytes], in_use: bool = False, access: Access = Access()) -> bytes:
        """A RENEWAL: a new license version that restarts the license clock, no new keys."""
        now = self.clock.now()
        try:
            entitlement = self.entitlement(access, now)
            record, state = self._existing(challenge, verify, now)
            self._check_renewal_entitlement(entitlement, record)
            if not record.policy.can_renew:
                raise DrmError(ErrorCode.RENEWAL_NOT_ALLOWED, "the license policy does not allow renewal")
            if in_use:
                state = lifecycle.transition(state, Event.USE)
            state = lifecycle.transition(state, Event.RENEW)
            grant = Grant(
                license_id=record.license_id, content_id=record.content_id, kind=LicenseKind(record.kind), keys=(),
                policy=record.policy, issued_at=now, device=None, version=record.version + 1,
            )
            body = build(grant)
            self.store.record_lifecycle(
                record.license_id, event="renewal", state=state.value, now=now, system=challenge.system,
                version=grant.version, license_start=now, first_used_at=now if in_use else None,
                message=f"version {grant.version}", request_key=self._replay_key("renewal", challenge, record),
                stream_heartbeat=self.stream_limits,
            )
        except DrmError as error:
            self.refused(error, challenge, device_id=None, now=now)
            raise
        log.info("renewed %s license %s to version %d", challenge.system, record.license_id, grant.version)
        return body

    def release(self, challenge: LicenseChallenge, *, verify: VerifyHolder,
                build: Callable[[Grant], bytes]) -> bytes:
        """A RELEASE (the record of a license's destruction): idempotent acknowledgement."""
        now = self.clock.now()
        try:
            record, state = self._existing(challenge, verify, now)
            lifecycle.transition(state, Event.RELEASE)
            grant = Grant(
                license_id=record.license_id, content_id=record.content_id, kind=LicenseKind(record.kind), keys=(),
                policy=LicensePolicy(can_play=False), issued_at=now, device=None, version=record.version,
            )
            body = build(grant)
            first = self.store.mark_released(record.license_id, now=now, system=challenge.system,
                                             reason="release acknowledged",
                                             request_key=self._replay_key("release", challenge, record))
        except DrmError as error:
            self.refused(error, challenge, device_id=None, now=now)
            raise
        log.info("%s %s license %s", "released" if first else "re-acknowledged release of", challenge.system,
                 record.license_id)
        return body

    @staticmethod
    def _replay_key(event: str, challenge: LicenseChallenge, record: LicenseRecord) -> str | None:
        """The replay key of a renewal or release: one per license and challenge (NEW keys never collide)."""
        if challenge.request_id is None:
            return None
        return f"{challenge.system}:{event}:{record.license_id}:{challenge.request_id.hex()}"

    def report(self, challenge: LicenseChallenge, report: DeviceReport, *, verify: VerifyHolder) -> str:
        """A device's signed report on a license; returns the status to answer.

        ``acknowledged``, ``recorded`` (Secure Stop; a resent report with a new nonce is
        acknowledged without counting the playback twice), ``released`` or
        ``already-released`` (Secure Delete, idempotent). A report whose key was seen is
        refused as replayed (the store holds the key).
        """
        now = self.clock.now()
        try:
            if report.kind is ReportKind.SECURE_DELETE:
                return self._secure_delete(challenge, verify, now)
            record = self._lookup(challenge, verify, now)
            if report.kind is ReportKind.SECURE_STOP:
                if record.kind != LicenseKind.TEMPORARY.value:
                    raise DrmError(ErrorCode.UNSUPPORTED_REQUEST,
                                   "Secure Stop reports non-persistent licenses; use Secure Delete for persistent ones")
                start, stop = report.playback or (0, 0)
                played = f"played {start}..{stop}"
                self.store.record_report(record.license_id, system=challenge.system, event=report.kind.value,
                                         report_key=report.report_key, now=now, once_key=played, first_used_at=start,
                                         message=f"{played} ({stop - start} s); report {report.report_key}")
                return "recorded"
            self.store.record_report(record.license_id, system=challenge.system, event=report.kind.value,
                                     report_key=report.report_key, now=now,
                                     message=f"storage result 0x{report.storage_result:08x}; "
                                             f"report {report.report_key}")
            return "acknowledged"
        except DrmError as error:
            self.refused(error, challenge, device_id=None, now=now)
            raise

    def _secure_delete(self, challenge: LicenseChallenge, verify: VerifyHolder, now: int) -> str:
        def persistent_only(record: LicenseRecord) -> None:
            if record.kind != LicenseKind.PERSISTENT.value:
                raise DrmError(ErrorCode.UNSUPPORTED_REQUEST, "Secure Delete reports persistent licenses only")
            verify(record)

        record, state = self._existing(challenge, persistent_only, now)
        lifecycle.transition(state, Event.RELEASE)
        first = self.store.mark_released(record.license_id, now=now, system=challenge.system,
                                         reason="release acknowledged")
        log.info("secure delete of %s license %s%s", challenge.system, record.license_id, "" if first else " (again)")
        return "released" if first else "already-released"

    def verify_device(self, challenge: LicenseChallenge, trust: TrustAnchor) -> VerifiedDevice:
        """Attest a device without issuing anything (e.g. a client-info query); refusals are audited."""
        now = self.clock.now()
        try:
            return attestation.verify(challenge, trust=trust, rules=self.rules,
                                      revocations=self.revocations.current(), now=now)
        except DrmError as error:
            self.refused(error, challenge, device_id=None, now=now)
            raise

    def end_playback(self, challenge: LicenseChallenge, trust: TrustAnchor) -> list[str]:
        """A FairPlay-style lease end: the attested device's stream session of that playback closes at once."""
        device = self.verify_device(challenge, trust)
        return self.store.close_stream(system=challenge.system, device_id=device.device_id,
                                       playback_id=challenge.playback_id or "", now=self.clock.now(),
                                       reason="lease end")

    def release_key_ids(self, system: str, kids: tuple[bytes, ...]) -> list[str]:
        """Release the licenses holding ``kids`` (Clear Key names licenses by key id); unknown kids are refused."""
        unknown = [kid.hex() for kid in kids if self.keyring.catalog.title_for_kid(kid) is None]
        if unknown:
            raise DrmError(ErrorCode.KEY_NOT_FOUND, f"key id {', '.join(unknown)} is not in the catalog")
        return self.store.release_by_key_ids(list(kids), system=system, now=self.clock.now())

    def record_download(self, download: DownloadRecord, entitlement: Entitlement) -> None:
        """Record an authorized download; a single-use token may pay for the download of its own license only."""
        token = None
        if entitlement.jti is not None:
            token = TokenSpend(entitlement.jti, entitlement.expires_at or download.authorized_at,
                               download.license_id, same_license_ok=True)
        self.store.record_download(download, token=token)

    def _check_renewal_entitlement(self, entitlement: Entitlement, record: LicenseRecord) -> None:
        """A token presented for a renewal must cover the license's title and account.

        A single-use token may renew the license it bought, and nothing else.
        """
        if entitlement.is_development:
            return
        if entitlement.content_ids is not None and record.content_id not in entitlement.content_ids:
            raise DrmError(ErrorCode.CONTENT_NOT_ENTITLED, f"the token does not cover {record.content_id}")
        if record.account is not None and entitlement.account != record.account:
            raise DrmError(ErrorCode.CONTENT_NOT_ENTITLED, "the license was issued to another account")
        if entitlement.jti is not None:
            spent_on = self.store.token_spent_on(entitlement.jti)
            if spent_on is not None and spent_on != record.license_id:
                raise DrmError(ErrorCode.TOKEN_REUSED, "this single-use token was used for another license")

    def _lookup(self, challenge: LicenseChallenge, verify: VerifyHolder, now: int) -> LicenseRecord:
        """Look up and authenticate the license a request refers to (no writes)."""
        record = self.store.license(challenge.existing_license_id or "")
        if record is None or record.system != challenge.system:
            raise DrmError(ErrorCode.LICENSE_NOT_FOUND, "no such license was issued by this server")
        verify(record)
        if abs(now - challenge.request_time) > self.rules.freshness_window:
            raise DrmError(ErrorCode.REPLAYED_CHALLENGE,
                           skew_message("request time", challenge.request_time, now, self.rules.freshness_window))
        return record

    def _existing(self, challenge: LicenseChallenge, verify: VerifyHolder, now: int) -> tuple[LicenseRecord, State]:
        """:meth:`_lookup`, then record the time-driven expiry if it is due (one port call)."""
        record = self._lookup(challenge, verify, now)
        state = lifecycle.current_state(State(record.state), record.policy, record.license_start, now)
        if state.value != record.state:
            self.store.record_lifecycle(record.license_id, event="expire", state=state.value, now=now,
                                        system=challenge.system, message="deadline passed")
        return record, state

    def resolve_title(self, challenge: LicenseChallenge) -> Title:
        catalog = self.keyring.catalog
        if challenge.content_id is not None:
            title = catalog.title(challenge.content_id)
            if title is None:
                raise DrmError(ErrorCode.CONTENT_NOT_FOUND, f"content {challenge.content_id!r} is not in the catalog")
            return title
        title = catalog.title_for_kid(challenge.key_ids[0]) if challenge.key_ids else None
        if title is None:
            raise DrmError(ErrorCode.KEY_NOT_FOUND, "no title holds the requested key ids")
        return title

    def refused(self, error: DrmError, challenge: LicenseChallenge, *, device_id: str | None, now: int,
                license_id: str | None = None) -> None:
        """Log and audit a refusal (malformed input is logged only: it stores nothing)."""
        log.info("refused %s %s: %s %s", challenge.system, challenge.kind.value, error.code.value, error.message)
        if error.code not in UNAUDITED:
            self.store.record_refusal(
                error, system=challenge.system, device_id=device_id, content_id=challenge.content_id,
                license_id=license_id or challenge.existing_license_id, now=now,
            )
