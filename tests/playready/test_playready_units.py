"""Unit tests of the PlayReady-style codecs: WRMHEADER (all versions), PRO, XMR,
certificate chains, ECC operations and the cfg= keys (pure, no HTTP)."""

from __future__ import annotations

import base64
import dataclasses
import struct

import pytest

from license_server import crypto
from license_server.core.model import Hdcp, SecurityLevel, Track
from license_server.crypto import ecc, elgamal
from license_server.errors import DrmError, ErrorCode
from license_server.protocols.playready import (
    SL150,
    SL2000,
    SL3000,
    certificates,
    faults,
    testcfg,
    wrmheader,
    xmr,
)

NS = "http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader"
# A known KID: UUID 00112233-4455-6677-8899-aabbccddeeff. The WRMHEADER writes the
# little-endian GUID bytes 33 22 11 00 | 55 44 | 77 66 | 88 99 aa bb cc dd ee ff.
KID = bytes.fromhex("00112233445566778899aabbccddeeff")
KID_B64 = "MyIRAFVEd2aImaq7zN3u/w=="
KID2 = bytes.fromhex("10000000100010001000100000000001")
KID2_B64 = base64.b64encode(bytes.fromhex("00000010" "0010" "0010" "1000100000000001")).decode()
NOW = 1_800_000_000


def test_kid_byte_order_is_the_little_endian_guid():
    assert base64.b64decode(KID_B64) == bytes.fromhex("33221100554477668899aabbccddeeff")
    assert wrmheader.kid_to_header(KID) == KID_B64
    assert wrmheader.kid_from_header(KID_B64) == KID
    assert wrmheader.kid_from_header(KID2_B64) == KID2


HEADERS = {
    "4.0.0.0": f'<WRMHEADER xmlns="{NS}" version="4.0.0.0"><DATA><PROTECTINFO><KEYLEN>16</KEYLEN>'
               f"<ALGID>AESCTR</ALGID></PROTECTINFO><KID>{KID_B64}</KID><CHECKSUM>AAECAwQFBgc=</CHECKSUM>"
               "<LA_URL>https://lic.example/rightsmanager.asmx</LA_URL></DATA></WRMHEADER>",
    "4.1.0.0": f'<WRMHEADER xmlns="{NS}" version="4.1.0.0"><DATA><PROTECTINFO>'
               f'<KID ALGID="AESCTR" VALUE="{KID_B64}"></KID></PROTECTINFO></DATA></WRMHEADER>',
    "4.2.0.0": f'<WRMHEADER xmlns="{NS}" version="4.2.0.0"><DATA><PROTECTINFO><KIDS>'
               f'<KID ALGID="AESCTR" VALUE="{KID_B64}"/><KID ALGID="AESCTR" VALUE="{KID2_B64}"/>'
               "</KIDS></PROTECTINFO></DATA></WRMHEADER>",
    "4.3.0.0": f'<WRMHEADER xmlns="{NS}" version="4.3.0.0"><DATA><PROTECTINFO><KIDS>'
               f'<KID ALGID="AESCBC" VALUE="{KID_B64}"/><KID VALUE="{KID2_B64}"/>'
               "</KIDS></PROTECTINFO></DATA></WRMHEADER>",
}


@pytest.mark.parametrize("version", list(HEADERS))
def test_wrmheader_versions_parse(version):
    header = wrmheader.parse_wrmheader(HEADERS[version])
    assert header.version == version
    assert header.kids[0] == KID
    if version in ("4.2.0.0", "4.3.0.0"):
        assert header.kids == (KID, KID2)
    else:
        assert len(header.kids) == 1
    if version == "4.0.0.0":
        assert header.keys[0].checksum == bytes(range(8))
        assert header.la_url == "https://lic.example/rightsmanager.asmx"
    if version == "4.3.0.0":
        assert [k.algid for k in header.keys] == ["AESCBC", None]


@pytest.mark.parametrize("version", list(HEADERS))
def test_wrmheader_round_trips_through_pro_and_pssh_in_utf16(version):
    header = wrmheader.parse_wrmheader(HEADERS[version])
    pro = wrmheader.build_pro(wrmheader.build_wrmheader(header))
    assert struct.unpack_from("<IHHH", pro)[:3] == (len(pro), 1, wrmheader.PRO_RECORD_WRMHEADER)
    assert pro[10:12] == "<".encode("utf-16-le")
    box = wrmheader.pssh_box(pro)
    assert box[12:28] == bytes.fromhex("9a04f07998404286ab92e65be0885f95")
    assert wrmheader.parse_wrmheader(wrmheader.parse_pro(wrmheader.pro_from_pssh(box))) == header
    assert wrmheader.parse_wrmheader(wrmheader.parse_pro(pro).encode("utf-16-le")) == header


@pytest.mark.parametrize("xml, fragment", [
    (HEADERS["4.2.0.0"].replace("4.2.0.0", "4.4.0.0"), "version"),
    (HEADERS["4.2.0.0"].replace('ALGID="AESCTR" VALUE', 'ALGID="AESCBC" VALUE', 1), "ALGID"),
    (HEADERS["4.1.0.0"].replace(f' VALUE="{KID_B64}"', ""), "VALUE"),
    (HEADERS["4.2.0.0"].replace(KID2_B64, KID_B64), "twice"),
    (HEADERS["4.0.0.0"].replace(KID_B64, "AAAA"), "16 bytes"),
    (HEADERS["4.0.0.0"].replace(NS, "urn:other"), "WRMHEADER"),
    (HEADERS["4.2.0.0"].replace("<KIDS>", "<KIDS></KIDS><X>").replace("</KIDS></PROTECTINFO>", "</X></PROTECTINFO>"),
     "KIDS"),
])
def test_bad_wrmheaders_are_refused(xml, fragment):
    with pytest.raises(DrmError) as err:
        wrmheader.parse_wrmheader(xml)
    assert err.value.code is ErrorCode.MALFORMED_CHALLENGE
    assert fragment in err.value.message


def test_kid_checksum_detects_the_wrong_key():
    key = bytes(range(16))
    good = wrmheader.HeaderKey(KID, "AESCTR", wrmheader.kid_checksum(KID, key))
    assert wrmheader.checksum_matches(good, key)
    assert not wrmheader.checksum_matches(good, bytes(16))
    # AES-ECB of the LE GUID, first 8 bytes (computed independently through CBC with a zero IV)
    assert good.checksum == crypto.aes_cbc_encrypt(key, bytes(16), base64.b64decode(KID_B64))[:8]


# ------------------------------------------------------------------- XMR

def _license(**changes) -> xmr.XmrLicense:
    key = xmr.ContentKey(KID, "AESCBC", "SD", 1, 0, bytes(range(128)))
    base = xmr.XmrLicense(
        rights_id=bytes(range(16)), issue_date=NOW, persistent=True, min_security_level=SL2000, keys=(key,),
        device_key=bytes(range(64)), begin=NOW - 10, end=NOW + 3600, expire_after_first_play=60,
        real_time_expiration=True, removal_date=NOW + 7200, play_right=True,
        platform_verification="SOFTWARE_VERIFIED", output_protection=xmr.OutputProtection(400, 300, 150, 250, 250),
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize("changes", [{}, {"persistent": False, "output_protection": None,
                                          "end": 0, "begin": 0, "expire_after_first_play": 0,
                                          "real_time_expiration": False, "removal_date": 0, "play_right": False}])
def test_xmr_round_trip(changes):
    lic = _license(**changes)
    data = xmr.encode(lic, b"k" * 16)
    parsed = xmr.decode(data)
    assert parsed.license == lic
    assert xmr.verify_signature(parsed, b"k" * 16)
    assert not xmr.verify_signature(parsed, b"x" * 16)
    assert data[:4] == b"XMR\x00" and data[8:24] == lic.rights_id  # the rights id follows the version
    assert xmr.split(data + data) == [data, data]


def test_xmr_uses_the_real_object_numbers():
    kinds = set(_kinds(xmr.encode(_license(), b"k" * 16)))
    # outer, global policy, playback, OPL, key material, content key, signature, settings, expiration, issue
    # date, ECC device key, policy metadata, expire after first play, security level, removal date, real time
    assert kinds == {0x01, 0x02, 0x04, 0x05, 0x09, 0x0A, 0x0B, 0x0D, 0x12, 0x13, 0x2A, 0x2C, 0x30, 0x34, 0x50, 0x55}
    assert 0x04 not in _kinds(xmr.encode(_license(play_right=False), b"k" * 16))  # no play right: no container


def _kinds(data: bytes) -> list[int]:
    out, stack = [], [(24, len(data))]
    while stack:
        start, end = stack.pop()
        while start < end:
            flags, kind, length = struct.unpack_from(">HHI", data, start)
            out.append(kind)
            if flags & xmr.CONTAINER:
                stack.append((start + 8, start + length))
            start += length
    return out


def test_xmr_signature_covers_every_policy_byte():
    data = bytearray(xmr.encode(_license(), b"k" * 16))
    offset = bytes(data).index(struct.pack(">HHI", 1, 0x30, 12)) + 8  # EXPIRE_AFTER_FIRST_PLAY = 60
    data[offset + 3] = 61
    parsed = xmr.decode(bytes(data))
    assert parsed.license.expire_after_first_play == 61
    assert not xmr.verify_signature(parsed, b"k" * 16)


def test_xmr_refuses_unknown_must_understand_objects_and_truncation():
    data = xmr.encode(_license(), b"k" * 16)
    with pytest.raises(DrmError):
        xmr.decode(data[:-5])
    head, body = data[:24], data[24:]
    unknown = struct.pack(">HHI", xmr.MUST_UNDERSTAND, 0x0777, 8)
    flags, kind, length = struct.unpack_from(">HHI", body)
    forged = head + struct.pack(">HHI", flags, kind, length + 8) + unknown + body[8:]
    with pytest.raises(DrmError, match="must be understood"):
        xmr.decode(forged)
    ignorable = struct.pack(">HHI", 0, 0x0777, 8)
    tolerated = head + struct.pack(">HHI", flags, kind, length + 8) + ignorable + body[8:]
    assert xmr.decode(tolerated).license == _license()


def test_elgamal_round_trip_and_content_key_point():
    private = ecc.generate_ec_private_key()
    d, public = ecc.private_scalar(private), ecc.ec_public_point(private)[1:]
    assert elgamal.public_point(d) == public
    integrity, wrapped = elgamal.encrypt_key_pair(public, None, bytes(range(16)))
    assert len(wrapped) == 128 and elgamal.decrypt(d, wrapped)[:32] == integrity + bytes(range(16))
    other = ecc.private_scalar(ecc.generate_ec_private_key())
    assert elgamal.decrypt(other, wrapped)[:32] != integrity + bytes(range(16))
    with pytest.raises(crypto.CryptoError):
        elgamal.decrypt(d, bytes(128))  # not curve points


# ------------------------------------------------------------ ECC and chains

def test_ecdsa_and_ecies_refuse_the_wrong_key_or_context():
    a, b = ecc.generate_ec_private_key(), ecc.generate_ec_private_key()
    signature = ecc.ecdsa_sign(a, b"message")
    ecc.ecdsa_verify(ecc.ec_public_point(a), b"message", signature)
    for point, message in ((ecc.ec_public_point(b), b"message"), (ecc.ec_public_point(a), b"messagE")):
        with pytest.raises(crypto.CryptoError):
            ecc.ecdsa_verify(point, message, signature)
    blob = ecc.ecies_encrypt(ecc.ec_public_point(a), bytes(32), b"ctx")
    assert ecc.ecies_decrypt(a, blob, b"ctx") == bytes(32)
    for key, context in ((b, b"ctx"), (a, b"other")):
        with pytest.raises(crypto.CryptoError):
            ecc.ecies_decrypt(key, blob, context)


def _chain(keyring, model="emulated-phone-l3", level=None, *, sign_with=None, same_key=False):
    m = keyring.playready.models[model]
    signing, encryption = ecc.generate_ec_private_key(), ecc.generate_ec_private_key()
    usage = certificates.KeyUsage
    keys = [(ecc.ec_public_point(signing), (usage.SIGN,)),
            (ecc.ec_public_point(signing if same_key else encryption), (usage.ENCRYPT_KEY,))]
    cert = certificates.issue(cert_type=certificates.CertType.DEVICE, security_level=level or m.security_level,
                              cert_id=bytes(16), keys=keys, model_name=m.name, system_id=m.system_id,
                              issuer_key_pem=sign_with or m.key_pem, features=certificates.DEVICE_FEATURES)
    return certificates.encode_chain([cert, certificates.decode_certificate(m.certificate)])


def test_certificate_chain_levels_and_signatures(keyring):
    root = keyring.playready.root_public_key
    chain = _chain(keyring)
    assert chain[:4] == b"CHAI" and chain[20:24] == b"CERT"
    info = certificates.verify_chain(chain, root, now=NOW)
    assert (info.security_level, info.system_id, info.model) == (SL2000, 7101, "emulated-phone-l3")
    assert info.signing_key != info.encryption_key
    assert certificates.verify_chain(_chain(keyring, "emulated-test-sl150"), root, now=NOW).security_level == SL150
    with pytest.raises(certificates.CertificateError, match="higher security level"):
        certificates.verify_chain(_chain(keyring, level=SL3000), root, now=NOW)
    with pytest.raises(certificates.CertificateError, match="signed by its model"):
        certificates.verify_chain(_chain(keyring, sign_with=ecc.generate_ec_private_key()), root, now=NOW)
    with pytest.raises(certificates.CertificateError, match="separate signing and encryption"):
        certificates.verify_chain(_chain(keyring, same_key=True), root, now=NOW)
    with pytest.raises(certificates.CertificateError, match="trusted root"):
        certificates.verify_chain(chain, ecc.ec_public_point(ecc.generate_ec_private_key()), now=NOW)
    tampered = bytearray(chain)
    tampered[60] ^= 1
    with pytest.raises(certificates.CertificateError):
        certificates.verify_chain(bytes(tampered), root, now=NOW)
    with pytest.raises(certificates.CertificateError, match="CHAI"):
        certificates.verify_chain(b"EPRC" + chain[4:], root, now=NOW)


# -------------------------------------------------------------------- cfg

def test_cfg_persist_and_first_play_expiration_become_neutral_overrides():
    cfg = testcfg.parse_cfg("(persist:true,firstexp:60)", now=NOW)
    overrides = cfg.overrides()
    assert (overrides.persist, overrides.playback_duration, overrides.rental_duration) == (True, 60, None)
    assert testcfg.parse_cfg("(firstplayexpiration:90)", now=NOW).first_play_expiration == 90


def test_cfg_dates_are_gmt_and_the_earlier_of_end_and_removal_wins():
    cfg = testcfg.parse_cfg("(begindate:20270115,enddate:20270116080000,removaldate:20270117)", now=NOW)
    assert cfg.begin_date == 1_799_971_200  # 2027-01-15T00:00:00Z
    assert cfg.end_date == NOW + 86400
    overrides = cfg.overrides()
    assert overrides.ends_at == NOW + 86400 and overrides.rental_duration is None
    assert testcfg.parse_cfg("(expiration:20270115090000,removaldate:20270115083000)", now=NOW).deadline == NOW + 1800


def test_an_end_date_ends_the_license_at_that_second_whenever_the_grant_is_issued():
    """Regression: the end date became a duration at parse time; a grant issued a second later ended late."""
    from license_server.core.policy import PERSISTENT_DEFAULTS

    overrides = testcfg.parse_cfg("(persist:true,enddate:20270116080000)", now=NOW).overrides()
    for issued in (NOW, NOW + 1, NOW + 3599):
        assert overrides.apply(PERSISTENT_DEFAULTS, issued).deadline(issued) == NOW + 86400
    with pytest.raises(DrmError) as refused:
        overrides.apply(PERSISTENT_DEFAULTS, NOW + 86400)
    assert refused.value.code is ErrorCode.INVALID_POLICY_OVERRIDE


def test_cfg_security_level_opl_kid_key_and_hooks():
    cfg = testcfg.parse_cfg(f"(sl:2000,ucvopl:300,cvopl:500,kid:{KID.hex()},contentkey:{'ab' * 16},ckt:aescbc,"
                            "playright:false,realtime:true)", now=NOW)
    assert cfg.min_security_level == SL2000 and cfg.cipher == "AESCBC" and cfg.real_time and not cfg.play_right
    assert cfg.kid == KID and cfg.content_key == bytes.fromhex("ab" * 16)
    assert cfg.output_protection == xmr.OutputProtection(500, 300, 0, 0, 0)
    overrides = cfg.overrides()
    assert overrides.persistent_min_level is SecurityLevel.L3
    assert dict(overrides.track_requirements)[Track.SD].hdcp is Hdcp.V1
    assert testcfg.parse_cfg("(kid:00112233-4455-6677-8899-aabbccddeeff)", now=NOW).kid == KID
    assert testcfg.parse_cfg(f"(kid:{KID_B64})", now=NOW).kid == KID
    hooks = testcfg.parse_cfg("(errorcode:0x8004C065,revoked:true,msg:clientinfo)", now=NOW)
    assert (hooks.error_code, hooks.revoked, hooks.client_info) == (0x8004C065, True, True)
    assert testcfg.parse_cfg(None, now=NOW) == testcfg.TestServerCfg()


@pytest.mark.parametrize("text, fragment", [
    ("(persist:true,bogus:1,other:2)", "'bogus', 'other'"),
    ("(persist:maybe)", "persist"),
    ("(firstexp:-5)", "firstexp"),
    ("(enddate:2027011)", "enddate"),
    ("(enddate:20270230)", "not a valid date"),
    ("(enddate:20200101)", "not in the future"),
    ("(begindate:20280101,enddate:20270201)", "begindate"),
    ("(sl:1000)", "sl"),
    ("(cvopl:123)", "cvopl"),
    ("(kid:nothex)", "kid"),
    ("(contentkey:" + "ab" * 16 + ")", "needs 'kid'"),
    ("(ckt:rc4)", "ckt"),
    ("(errorcode:0x0000C065)", "errorcode"),
    ("(msg:hello)", "clientinfo"),
    ("(firstexp:60,firstplayexpiration:60)", "repeats"),
    ("(persist:true)(persist:false)", "one license per request"),
    ("persist:true", "expected '('"),
    ("(persist:true", "not closed"),
    ("(persist true)", "not key:value"),
])
def test_bad_cfg_strings_are_refused_naming_the_culprit(text, fragment):
    with pytest.raises(DrmError) as err:
        testcfg.parse_cfg(text, now=NOW)
    assert err.value.code is ErrorCode.INVALID_POLICY_OVERRIDE
    assert fragment in err.value.message


# Real DRM_E values (PlayReady Porting Kit names) the table may use; nothing else goes on the wire.
REAL_DRM_E = {
    0x8004C600: "DRM_E_SERVER_INTERNAL_ERROR", 0x8004C601: "DRM_E_SERVER_INVALID_MESSAGE",
    0x8004C604: "DRM_E_SERVER_SERVICE_SPECIFIC", 0x8004C035: "DRM_E_INVALID_DEVICE_CERTIFICATE",
    0x80040E8A: "DRM_E_P256_INVALID_SIGNATURE", 0x8004C065: "DRM_E_DEVCERT_REVOKED",
    0x8004C053: "DRM_E_CERTIFICATE_REVOKED", 0x8004C01C: "DRM_E_CLIENTTIMEINVALID",
    0x8004A004: "DRM_E_DEVICE_SECURITY_LEVEL_TOO_LOW", 0x8004C00B: "DRM_E_RIGHTS_NOT_AVAILABLE",
    0x8004C00C: "DRM_E_LICENSEMISMATCH", 0x8004C611: "DRM_E_SERVER_INVALID_LICENSEID",
    0x8004C009: "DRM_E_LICENSE_EXPIRED", 0x8004C602: "DRM_E_SERVER_DEVICE_LIMIT_REACHED",
}


def test_status_code_table_uses_only_real_drm_e_codes():
    public = {code: faults.status_for(code) for code in ErrorCode}
    assert public[ErrorCode.DEVICE_REVOKED] == (0x8004C065, "DRM_E_DEVCERT_REVOKED")
    assert public[ErrorCode.INTERNAL_ERROR] == (0x8004C600, "DRM_E_SERVER_INTERNAL_ERROR")
    assert public[ErrorCode.MALFORMED_CHALLENGE] == (0x8004C601, "DRM_E_SERVER_INVALID_MESSAGE")
    for code, (value, name) in public.items():
        assert REAL_DRM_E.get(value) == name, code
    fault = faults.parse_fault(faults.build_fault(DrmError(ErrorCode.DEVICE_ROOTED, "rooted")))
    assert (fault.status_code, fault.error_code) == (0x8004C053, "DEVICE_ROOTED")


def test_readme_documents_every_playready_cfg_key_with_an_example():
    from pathlib import Path

    from license_server.protocols.playready.testcfg import ALIASES, KEYS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The PlayReady test-server syntax", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {key.strip(" `") for row in rows for key in row.split("|")[1].split(",")}
    assert documented == set(KEYS) | set(ALIASES)
    assert all("`cfg=(" in row for row in rows)


def test_a_software_security_level_in_cfg_lets_an_unattested_client_persist():
    """sl:150/sl:2000 name a software level as enough; sl:3000 and no sl keep the default refusal."""
    from license_server.core.model import LicenseKind
    from license_server.core.policy import check_unattested
    from license_server.errors import DrmError

    assert testcfg.parse_cfg("(persist:true,sl:2000)", now=0).overrides().unattested_persistence is True
    check_unattested(LicenseKind.PERSISTENT, testcfg.parse_cfg("(persist:true,sl:150)", now=0).overrides())
    for text in ("(persist:true,sl:3000)", "(persist:true)"):
        overrides = testcfg.parse_cfg(text, now=0).overrides()
        assert not overrides.unattested_persistence
        with pytest.raises(DrmError) as refused:
            check_unattested(LicenseKind.PERSISTENT, overrides)
        assert refused.value.code.value == "ATTESTATION_REQUIRED"
