"""store_sql.py (SQLite and PostgreSQL): device reports are deduplicated by unique keys, not by audit text."""

from __future__ import annotations

import pytest

from license_server.core.model import Grant, LicenseKind, LicensePolicy
from license_server.core.ports import LicenseRecord
from license_server.errors import DrmError, ErrorCode
from license_server.store import Store

NOW = 1_800_000_000


def issue(store: Store, license_id: str = "ab" * 8) -> str:
    grant = Grant(license_id, "demo-movie", LicenseKind.TEMPORARY, (), LicensePolicy(license_duration=60), NOW, None)
    store.record_grant(grant, system="playready", request_key=f"k-{license_id}", secrets={}, now=NOW)
    return license_id


def test_a_report_key_is_unique_per_license(any_store):
    store = any_store
    license_id = issue(store)
    assert store.record_report(license_id, system="playready", event="acknowledged", report_key="n1", now=NOW,
                               message="stored")
    with pytest.raises(DrmError) as caught:
        store.record_report(license_id, system="playready", event="acknowledged", report_key="n1", now=NOW,
                            message="stored")
    assert caught.value.code is ErrorCode.REPLAYED_CHALLENGE
    other = issue(store, "cd" * 8)  # the same nonce on another license is another report
    assert store.record_report(other, system="playready", event="acknowledged", report_key="n1", now=NOW,
                               message="stored")


def test_a_resent_report_about_the_same_subject_is_acknowledged_not_counted_twice(any_store):
    store = any_store
    license_id = issue(store)
    kwargs = dict(system="playready", event="secure_stop", now=NOW, once_key="played 1..2", first_used_at=1,
                  message="played 1..2 (1 s)")
    assert store.record_report(license_id, report_key="n1", **kwargs) is True
    assert store.record_report(license_id, report_key="n2", **kwargs) is False
    events = [e["event"] for e in store.audit_trail(license_id=license_id)]
    assert events.count("secure_stop") == 1
    assert store.license(license_id).first_used_at == 1


def test_reports_on_unknown_licenses_are_not_found_and_the_policy_reads_back_typed(any_store):
    store = any_store
    with pytest.raises(DrmError) as caught:
        store.record_report("ff" * 8, system="playready", event="acknowledged", report_key="n", now=NOW, message="")
    assert caught.value.code is ErrorCode.LICENSE_NOT_FOUND
    record = store.license(issue(store))
    assert isinstance(record, LicenseRecord) and record.policy == LicensePolicy(license_duration=60)
    assert record.deadline() == NOW + 60 and record.public()["policy"]["license_duration"] == 60
