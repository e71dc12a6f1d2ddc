"""pyplayready 0.8.5 as an independent PlayReady client against our server, over real HTTP.

An exported ``.prd`` (``device-emulator export --format prd``) is loaded by
pyplayready, which builds its own challenge to our emulated license server key
and reads our XMR licenses. pyplayready is a test-only dependency (GPL) that
pins cryptography<46 and construct 2.8.8; without it these tests are skipped.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from device_emulator.cdm.playready import PlayReadyCdm
from device_emulator.cli import main as device_cli
from license_server.clock import ControlledClock
from license_server.protocols.playready import PROTOCOLS_NS

pytest.importorskip("pyplayready", reason="pyplayready==0.8.5 (test extra) is not installed in this environment")

from Crypto.PublicKey import ECC
from ecpy.curves import Curve, Point
from pyplayready.cdm import Cdm
from pyplayready.device import Device as PrdDevice
from pyplayready.license.xmrlicense import XMRObjectTypes
from pyplayready.misc.exceptions import ServerException
from pyplayready.system.bcert import CertificateChain
from pyplayready.system.pssh import PSSH

KEYS = Path(__file__).resolve().parents[2] / "keys"
PATH = "/playready/rightsmanager.asmx"


@pytest.fixture
def clock() -> ControlledClock:
    """pyplayready stamps ClientTime with the wall clock: run the server's clock near it."""
    return ControlledClock(int(time.time()), frozen=True)


def _export(device, tmp_path: Path) -> Path:
    out = tmp_path / f"{device.device_id}.prd"
    result = CliRunner().invoke(device_cli, ["export", str(device.directory), "--format", "prd", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _cdm(prd: Path) -> Cdm:
    cdm = Cdm.from_device(PrdDevice.load(prd))
    public = ECC.import_key((KEYS / "playready" / "license-server-public.pem").read_text())
    cdm._wmrm_key = Point(int(public.pointQ.x), int(public.pointQ.y), Curve.get_curve("secp256r1"))
    return cdm


def _wrm_header(device, keyring, content_id: str = "demo-movie", key_ids=None) -> str:
    pro = PlayReadyCdm(device, keyring).content_header(content_id, key_ids=key_ids)
    return PSSH(pro).wrm_headers[0]


async def _acquire(client, cdm: Cdm, header: str, query: str = "") -> tuple[bytes, str]:
    session = cdm.open()
    challenge = cdm.get_license_challenge(session, header)
    response = await client.post(PATH + query, data=challenge.encode("utf-8"), headers={
        "Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{PROTOCOLS_NS}/AcquireLicense"'})
    return session, await response.text()


def _catalog(keyring, content_id: str = "demo-movie") -> dict[str, tuple[str, bytes]]:
    return {t.kid.hex(): (t.track.value, t.key) for t in keyring.catalog.title(content_id).tracks}


async def test_an_exported_sl2000_device_gets_the_catalog_keys(client, make_device, keyring, tmp_path):
    device = make_device("L3")
    prd = _export(device, tmp_path)
    assert PrdDevice.load(prd).security_level == 2000
    cdm = _cdm(prd)
    session, answer = await _acquire(client, cdm, _wrm_header(device, keyring))
    cdm.parse_license(session, answer)  # every XMR's AES-CMAC verifies under its integrity key
    keys = {k.key_id.hex: k.key for k in cdm.get_keys(session)}
    catalog = _catalog(keyring)
    # no attestation evidence (a stock client): software tracks only, with the catalog's keys
    assert {catalog[kid][0] for kid in keys} == {"AUDIO", "SD"}
    assert all(catalog[kid][1] == key for kid, key in keys.items())


async def test_an_sl150_device_is_refused_hd_and_uhd_keys(client, make_device, keyring, tmp_path):
    device = make_device("L3")
    device.record.extra["playready_model"] = "emulated-test-sl150"
    device.save()
    prd = _export(device, tmp_path)
    assert PrdDevice.load(prd).security_level == 150
    cdm = _cdm(prd)
    session, answer = await _acquire(client, cdm, _wrm_header(device, keyring))
    cdm.parse_license(session, answer)
    catalog = _catalog(keyring)
    assert {catalog[k.key_id.hex][0] for k in cdm.get_keys(session)} == {"AUDIO", "SD"}
    hd = tuple(bytes.fromhex(kid) for kid, (track, _) in catalog.items() if track in ("HD", "UHD1"))
    session, answer = await _acquire(client, cdm, _wrm_header(device, keyring, key_ids=hd))
    with pytest.raises(ServerException):
        cdm.parse_license(session, answer)


async def test_a_revoked_device_gets_a_server_fault(client, make_device, keyring, tmp_path):
    device = make_device("L1")
    cdm = _cdm(_export(device, tmp_path))
    session, answer = await _acquire(client, cdm, _wrm_header(device, keyring), "?cfg=(revoked:true)")
    with pytest.raises(ServerException, match="DRM_E_DEVCERT_REVOKED"):
        cdm.parse_license(session, answer)


def _objects(parsed) -> list[tuple[int, object]]:
    """Every (type, data) pyplayready parsed, descending through nested objects."""
    out, stack = [], list(parsed.containers)
    while stack:
        obj = stack.pop()
        out.append((obj.type, obj.data))
        if hasattr(obj.data, "type") and hasattr(obj.data, "flags"):
            stack.append(obj.data)
    return out


async def test_firstexp_security_level_and_realtime_read_by_pyplayready(client, make_device, keyring, tmp_path):
    device = make_device("L3")
    cdm = _cdm(_export(device, tmp_path))
    session, answer = await _acquire(client, cdm, _wrm_header(device, keyring),
                                     "?cfg=(firstexp:60,sl:2000,realtime:true)")
    cdm.parse_license(session, answer)
    assert cdm.get_keys(session)
    from pyplayready.license.license import License
    from pyplayready.misc.soap_message import SoapMessage

    licenses = License(SoapMessage.loads(answer).get_message()).licenses
    assert licenses
    known = {t.value for t in XMRObjectTypes}
    for lic in licenses:
        objects = _objects(lic.parsed)
        assert all(kind in known for kind, _ in objects), [hex(k) for k, _ in objects]
        by_type = {kind: data for kind, data in objects}
        assert by_type[XMRObjectTypes.SETTINGS_OBJECT].rights & 0x0001  # CANNOT_PERSIST: a streaming license
        assert by_type[XMRObjectTypes.EXPIRATION_AFTER_FIRSTPLAY_OBJECT].seconds == 60
        assert by_type[XMRObjectTypes.SECURITY_LEVEL].minimum_security_level == 2000
        assert XMRObjectTypes.REAL_TIME_EXPIRATION in by_type
        assert len(lic.parsed.rights_id) == 16


async def test_a_persistent_license_with_first_play_expiry_read_by_pyplayready(client, make_device, keyring,
                                                                                 tmp_path):
    """cfg=(persist:true,firstexp:60,sl:2000): the license names SL2000 as enough, so pyplayready may persist."""
    device = make_device("L3")
    cdm = _cdm(_export(device, tmp_path))
    session, answer = await _acquire(client, cdm, _wrm_header(device, keyring),
                                     "?cfg=(persist:true,firstexp:60,sl:2000)")
    cdm.parse_license(session, answer)
    keys = {k.key_id.hex: k.key for k in cdm.get_keys(session)}
    catalog = _catalog(keyring)
    assert {catalog[kid][0] for kid in keys} == {"AUDIO", "SD"}
    assert all(catalog[kid][1] == key for kid, key in keys.items())
    from pyplayready.license.license import License
    from pyplayready.misc.soap_message import SoapMessage

    licenses = License(SoapMessage.loads(answer).get_message()).licenses
    assert licenses
    for lic in licenses:
        by_type = {kind: data for kind, data in _objects(lic.parsed)}
        assert not by_type[XMRObjectTypes.SETTINGS_OBJECT].rights & 0x0001  # CANNOT_PERSIST unset: persistent
        assert by_type[XMRObjectTypes.EXPIRATION_AFTER_FIRSTPLAY_OBJECT].seconds == 60


async def test_an_unattested_client_gets_no_persistent_license(client, make_device, keyring, tmp_path):
    """pyplayready sends no evidence: an unverified platform, never given a persistent license."""
    device = make_device("L1")
    cdm = _cdm(_export(device, tmp_path))
    challenge = cdm.get_license_challenge(cdm.open(), _wrm_header(device, keyring))
    response = await client.post(PATH + "?cfg=(persist:true)", data=challenge.encode("utf-8"), headers={
        "Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{PROTOCOLS_NS}/AcquireLicense"'})
    assert response.status == 500  # a SOAP Fault, as the real service answers
    assert response.headers["X-DRM-Error-Code"] == "ATTESTATION_REQUIRED"
    assert "attestation evidence" in await response.text()


async def test_pyplayready_parses_and_verifies_our_chains(make_device, keyring, tmp_path):
    for level, model in (("L1", None), ("L3", None), ("L3", "emulated-test-sl150")):
        device = make_device(level)
        if model:
            device.record.extra["playready_model"] = model
            device.save()
        chain = CertificateChain.loads(PlayReadyCdm(device, keyring).identity.chain)
        assert chain.count() == 2 and chain.get(0).get_type() == 2 and chain.get(1).get_type() == 4
        for index in range(chain.count()):
            chain.get(index).verify_signature()
        assert chain.dumps() == PlayReadyCdm(device, keyring).identity.chain
        assert "emulated" in chain.get_name()
