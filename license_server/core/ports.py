"""The storage port: the record types the core reads and writes, and the repository protocol.

The core owns this interface; storage adapters implement it (SQLite in
:mod:`license_server.store`; a PostgreSQL adapter drops in the same way), so
dependencies point inward and the core never sees SQL.

Every write the core needs to be atomic is *one* method, and an implementation
runs each such method in *one* transaction:

* :meth:`LicenseRepository.record_grant`: the license, its device, the replay key
  of the challenge, the single-use token id and the usage caps (checked on a
  snapshot taken inside the transaction), with the audit entry;
* :meth:`LicenseRepository.record_lifecycle` / :meth:`LicenseRepository.mark_released` /
  :meth:`LicenseRepository.release_by_key_ids`: lifecycle events with their audit entries;
* :meth:`LicenseRepository.record_report`: a device report, deduplicated by unique keys;
* :meth:`LicenseRepository.record_download`: an authorized download with its single-use token check;
* stream sessions (:mod:`license_server.core.streams`): opened, continued or refused, with the
  evictions, inside ``record_grant`` (``stream=``); a heartbeat extends the lease inside
  ``record_lifecycle`` (``stream_heartbeat=True``); ``mark_released`` and a Secure Stop report close
  the license's session in their transaction; :meth:`LicenseRepository.close_stream` (FairPlay lease
  end) and :meth:`LicenseRepository.end_stream` (an operator) close one at once.

Refusals raised from inside a write (replay, spent token, caps) are
:class:`~license_server.errors.DrmError` and leave nothing written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from license_server.core.model import Grant, LicensePolicy
from license_server.core.streams import StreamSession, StreamStart
from license_server.errors import DrmError


class _HasPolicy(Protocol):
    """A record carrying a policy (possibly still the stored JSON mapping)."""

    @property
    def policy(self) -> LicensePolicy | Mapping[str, Any]: ...


def _typed_policy(record: _HasPolicy) -> None:
    """Read a stored JSON policy back into :class:`LicensePolicy` (frozen dataclass helper)."""
    policy = record.policy
    if isinstance(policy, Mapping):
        object.__setattr__(record, "policy", LicensePolicy.from_dict(policy))


@dataclass(frozen=True)
class Holder:
    """Who a license is issued to, as the entitlement says."""

    account: str | None = None
    tier: str | None = None
    token_jti: str | None = None
    token_expires_at: int | None = None


@dataclass(frozen=True)
class LicenseRecord:
    """An issued license as the store keeps it (``policy`` always typed)."""

    license_id: str
    system: str
    device_id: str | None
    content_id: str
    kind: str
    state: str
    version: int
    kids: list[str]
    tracks: list[str]
    policy: LicensePolicy
    issued_at: int
    updated_at: int
    released_at: int | None
    secrets: dict[str, str]
    license_start: int = 0
    first_used_at: int | None = None
    account: str | None = None
    tier: str | None = None
    token_jti: str | None = None

    def __post_init__(self) -> None:
        _typed_policy(self)

    def deadline(self) -> int | None:
        """When the license ends (see :meth:`LicensePolicy.deadline`)."""
        return self.policy.deadline(self.license_start)

    def public(self) -> dict[str, Any]:
        """The record without secrets, for logs and APIs (the policy as its JSON mapping)."""
        data = dict(self.__dict__)
        data.pop("secrets")
        data["policy"] = self.policy.as_dict()
        return data


@dataclass(frozen=True)
class UsageSnapshot:
    """Taken by the repository inside the grant's transaction. Only active holdings count: a persistent
    license that is neither released nor expired and whose slot has not ended
    (:func:`~license_server.core.entitlements.slot_end`)."""

    device_active: int  # active persistent licenses on this device
    account_devices: frozenset[str]  # the devices holding an active persistent license of the account
    device_grants_this_month: int  # persistent grants to this device (same account) since month start


@dataclass(frozen=True)
class UsageRules:
    """The caps that apply to one persistent grant (checked by :func:`entitlements.check_usage`)."""

    account: str | None
    device_id: str
    device_cap: int | None
    max_active_per_device: int | None
    monthly_allowance: int | None


@dataclass(frozen=True)
class TokenSpend:
    """A single-use token presented for something tied to ``license_id``.

    For a grant the token must be unused; for a download it may already be spent
    on that same license (the download of the license it bought), nothing else.
    """

    jti: str
    expires_at: int
    license_id: str
    same_license_ok: bool = False


@dataclass(frozen=True)
class DownloadRecord:
    """An authorized media download."""

    download_id: str
    device_id: str
    content_id: str
    license_id: str
    account: str
    tier: str
    quality: str
    scheme: str
    files: int
    total_bytes: int
    authorized_at: int
    expires_at: int


class LicenseRepository(Protocol):
    """What the core needs from storage. One method per atomic decision."""

    # ------------------------------------------------------------ atomic writes

    def record_grant(self, grant: Grant, *, system: str, request_key: str | None, secrets: dict[str, str], now: int,
                     holder: Holder | None = None, caps: UsageRules | None = None,
                     stream: StreamStart | None = None) -> None:
        """License + device + replay key + single-use token + caps + stream session + audit, in one transaction.

        With ``stream``, :func:`streams.decide_open` runs on a snapshot of the account's stream
        sessions taken inside the transaction: the license opens a session (evicting the oldest
        under ``evict_oldest``), continues the live session of the same playback, or is refused
        (``STREAM_LIMIT_REACHED``, ``STREAM_EVICTED``).

        Raises ``REPLAYED_CHALLENGE`` if ``request_key`` was seen (None: the challenge has no
        replay key to claim), ``TOKEN_REUSED`` if the holder's token id was spent, and whatever
        :func:`entitlements.check_usage` raises for ``caps`` on a snapshot of the account's and
        device's persistent licenses taken inside the transaction (so concurrent grants cannot
        both take the last slot).
        """
        ...

    def record_refusal(self, error: DrmError, *, system: str, device_id: str | None, content_id: str | None,
                       license_id: str | None = None, now: int) -> None:
        """Audit a refusal."""
        ...

    def record_lifecycle(self, license_id: str, *, event: str, state: str, now: int, system: str,
                         version: int | None = None, license_start: int | None = None,
                         policy: LicensePolicy | None = None, first_used_at: int | None = None,
                         released: bool = False, message: str | None = None,
                         request_key: str | None = None, stream_heartbeat: bool = False) -> None:
        """Apply a lifecycle transition decided by the core, with its audit entry.

        With ``request_key`` (a renewal's replay key), the key is claimed in the same
        transaction: a key seen before raises ``REPLAYED_CHALLENGE`` and nothing changes.
        With ``stream_heartbeat``, the license's stream session (if any) is checked by
        :func:`streams.check_heartbeat` and its lease extended, in the same transaction.
        """
        ...

    def mark_released(self, license_id: str, *, now: int, system: str, reason: str,
                      request_key: str | None = None) -> bool:
        """Mark a license released (idempotent); False if it already was.

        With ``request_key`` (a release's replay key), a key seen before is acknowledged
        again (False) without recording anything.
        """
        ...

    def release_by_key_ids(self, kids: list[bytes], *, system: str, now: int) -> list[str]:
        """Release every issued license of ``system`` holding any of ``kids``; the released ids (audited)."""
        ...

    def record_report(self, license_id: str, *, system: str, event: str, report_key: str, now: int,
                      message: str, once_key: str | None = None, first_used_at: int | None = None) -> bool:
        """Record a device report against a license, with its audit entry.

        ``report_key`` is unique per license: a second report with it raises
        ``REPLAYED_CHALLENGE``. ``once_key`` (optional) names what the report is about
        (e.g. one playback): if a report with that key was recorded already, nothing is
        written and False is returned (a resent report is acknowledged, not counted twice).
        """
        ...

    def record_download(self, download: DownloadRecord, *, token: TokenSpend | None = None) -> None:
        """Record an authorized download with its single-use token check and audit entry."""
        ...

    def close_stream(self, *, system: str, device_id: str, playback_id: str, now: int, reason: str) -> list[str]:
        """Close the open stream session of a device's playback at once (FairPlay lease end); its license ids."""
        ...

    def end_stream(self, session_id: str, *, now: int, reason: str) -> StreamSession | None:
        """An operator ends a session (its next heartbeat: ``STREAM_EVICTED``); None if unknown."""
        ...

    def streams(self, *, account: str | None = None, now: int, include_ended: bool = False) -> list[StreamSession]:
        """Stream sessions (live ones unless ``include_ended``), by account then opening time."""
        ...

    # ------------------------------------------------------------------- reads

    def license(self, license_id: str) -> LicenseRecord | None:
        ...

    def device(self, device_id: str) -> dict[str, Any] | None:
        """One known device (its row: ``device_id``, ``system``, ``system_id``, ``model``...), or None."""
        ...

    def token_spent_on(self, jti: str) -> str | None:
        """The license a single-use token id was spent on ("" if none recorded), or None if unused."""
        ...
