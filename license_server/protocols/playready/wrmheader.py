"""The PlayReady header: WRMHEADER XML (versions 4.0 to 4.3), the PlayReady
Object (PRO) that carries it, and the PSSH box around the PRO.

Key ids. Everywhere else in this project a KID is the 16 bytes of its UUID in
the usual (big-endian) order, as in CENC's ``default_KID``. The WRMHEADER
writes a KID as base64 of the *little-endian GUID* byte order: the first three
groups (4, 2 and 2 bytes) are byte-reversed. :func:`kid_to_header` and
:func:`kid_from_header` convert.

Versions (``version`` attribute of ``<WRMHEADER>``):

========  ===================================================  ==================
version   where the KIDs are                                   ALGID
========  ===================================================  ==================
4.0.0.0   one ``DATA/KID`` element (text), ``DATA/CHECKSUM``   ``DATA/PROTECTINFO/ALGID`` = AESCTR, KEYLEN 16
4.1.0.0   one ``DATA/PROTECTINFO/KID`` (``VALUE`` attribute)   ``ALGID`` attribute = AESCTR
4.2.0.0   ``DATA/PROTECTINFO/KIDS/KID`` list                   ``ALGID`` attribute = AESCTR
4.3.0.0   ``DATA/PROTECTINFO/KIDS/KID`` list                   ``ALGID`` attribute AESCTR or AESCBC (optional)
========  ===================================================  ==================

A PRO is ``u32 LE total length | u16 LE record count | records``; a record is
``u16 LE type | u16 LE length | value``; type 1 holds the WRMHEADER as
UTF-16LE text.
"""

from __future__ import annotations

import base64
import struct
import uuid
from dataclasses import dataclass

from license_server import crypto
from license_server.errors import malformed
from license_server.protocols.playready import HEADER_NS, SYSTEM_ID, xmlsafe
from license_server.protocols.playready.xmlsafe import Element

VERSIONS = ("4.0.0.0", "4.1.0.0", "4.2.0.0", "4.3.0.0")
AESCTR, AESCBC = "AESCTR", "AESCBC"
PRO_RECORD_WRMHEADER = 1
MAX_HEADER_BYTES = 32 * 1024


@dataclass(frozen=True)
class HeaderKey:
    kid: bytes  # 16 bytes, UUID (big-endian) order
    algid: str | None = AESCTR  # None: not stated (4.3 only)
    checksum: bytes | None = None  # 8 bytes


@dataclass(frozen=True)
class WrmHeader:
    version: str
    keys: tuple[HeaderKey, ...]
    la_url: str | None = None
    lui_url: str | None = None
    ds_id: str | None = None

    @property
    def kids(self) -> tuple[bytes, ...]:
        return tuple(k.kid for k in self.keys)


# ------------------------------------------------------------------ KIDs

def kid_to_header(kid: bytes) -> str:
    """A 16-byte KID (UUID order) as the WRMHEADER writes it: base64 of the LE GUID."""
    return base64.b64encode(uuid.UUID(bytes=kid).bytes_le).decode("ascii")


def kid_from_header(value: str) -> bytes:
    guid = xmlsafe.b64decode(value, "KID", size=16)
    return uuid.UUID(bytes_le=guid).bytes


def kid_checksum(kid: bytes, key: bytes, algid: str | None = AESCTR) -> bytes | None:
    """The header's 8-byte key checksum, or None where the Header Specification defines none.

    AESCTR: the first 8 bytes of AES-ECB(key, LE-GUID KID), computed as the
    first CBC block under a zero IV. AESCBC (WRMHEADER 4.3): the specification
    defines no checksum, so none is written and none is checked.
    """
    if algid == AESCBC:
        return None
    guid = uuid.UUID(bytes=kid).bytes_le
    return crypto.aes_cbc_encrypt(key, bytes(16), guid)[:8]


def checksum_matches(header_key: HeaderKey, key: bytes) -> bool:
    expected = kid_checksum(header_key.kid, key, header_key.algid)
    if header_key.checksum is None or expected is None:
        return True
    return crypto.constant_time_equal(expected, header_key.checksum)


# ---------------------------------------------------------------- parsing

def parse_wrmheader(xml: bytes | str) -> WrmHeader:
    """Parse a WRMHEADER document (str, or UTF-8 / UTF-16LE bytes as found in a PRO)."""
    if isinstance(xml, bytes) and xml[:2] in (b"<\x00", b"\xff\xfe"):
        try:
            xml = xml.decode("utf-16-le").lstrip("\ufeff")
        except UnicodeDecodeError as exc:
            raise malformed("WRMHEADER is not valid UTF-16LE") from exc
    return parse_wrmheader_element(xmlsafe.parse(xml, what="WRMHEADER", limit=MAX_HEADER_BYTES))


def parse_wrmheader_element(root: Element) -> WrmHeader:
    if xmlsafe.local(root.tag) != "WRMHEADER" or xmlsafe.namespace(root.tag) != HEADER_NS:
        raise malformed(f"expected <WRMHEADER xmlns=\"{HEADER_NS}\">")
    version = root.get("version", "")
    if version not in VERSIONS:
        raise malformed(f"WRMHEADER version {version!r} is not one of {', '.join(VERSIONS)}")
    data = xmlsafe.require(root, "DATA")
    keys: tuple[HeaderKey, ...]
    if version == "4.0.0.0":
        keys = (_keys_40(data),)
    else:
        protect = xmlsafe.require(data, "PROTECTINFO")
        if version == "4.1.0.0":
            keys = (_attr_key(xmlsafe.require(protect, "KID"), version),)
        else:
            kids = xmlsafe.children(xmlsafe.require(protect, "KIDS"), "KID")
            if not kids:
                raise malformed("WRMHEADER KIDS is empty")
            keys = tuple(_attr_key(k, version) for k in kids)
    if len({k.kid for k in keys}) != len(keys):
        raise malformed("WRMHEADER lists a KID twice")
    return WrmHeader(
        version=version, keys=keys,
        la_url=xmlsafe.optional_text(data, "LA_URL"),
        lui_url=xmlsafe.optional_text(data, "LUI_URL"),
        ds_id=xmlsafe.optional_text(data, "DS_ID"),
    )


def _keys_40(data: Element) -> HeaderKey:
    protect = xmlsafe.require(data, "PROTECTINFO")
    if xmlsafe.text(protect, "ALGID") != AESCTR:
        raise malformed("WRMHEADER 4.0.0.0 supports ALGID AESCTR only")
    if xmlsafe.optional_text(protect, "KEYLEN") not in (None, "16"):
        raise malformed("WRMHEADER KEYLEN must be 16")
    checksum = xmlsafe.optional_text(data, "CHECKSUM")
    return HeaderKey(
        kid=kid_from_header(xmlsafe.text(data, "KID")),
        algid=AESCTR,
        checksum=xmlsafe.b64decode(checksum, "CHECKSUM", size=8) if checksum else None,
    )


def _attr_key(element: Element, version: str) -> HeaderKey:
    value = element.get("VALUE")
    if not value:
        raise malformed("WRMHEADER KID lacks its VALUE attribute")
    algid = element.get("ALGID")
    allowed = (AESCTR, AESCBC, None) if version == "4.3.0.0" else (AESCTR,)
    if algid not in allowed:
        raise malformed(f"WRMHEADER {version} does not allow ALGID {algid!r}")
    checksum = element.get("CHECKSUM")
    return HeaderKey(
        kid=kid_from_header(value), algid=algid,
        checksum=xmlsafe.b64decode(checksum, "CHECKSUM", size=8) if checksum else None,
    )


# --------------------------------------------------------------- building

def build_wrmheader(header: WrmHeader) -> str:
    """Serialize ``header`` in its version's layout."""
    if header.version not in VERSIONS:
        raise ValueError(f"unknown WRMHEADER version {header.version}")
    if not header.keys or (header.version in ("4.0.0.0", "4.1.0.0") and len(header.keys) != 1):
        raise ValueError(f"WRMHEADER {header.version} needs exactly one KID" if header.keys else "no KID")
    e = xmlsafe.escape
    b64 = xmlsafe.b64encode
    if header.version == "4.0.0.0":
        key = header.keys[0]
        protect = f"<PROTECTINFO><KEYLEN>16</KEYLEN><ALGID>{AESCTR}</ALGID></PROTECTINFO>"
        kid = f"<KID>{kid_to_header(key.kid)}</KID>"
        if key.checksum:
            kid += f"<CHECKSUM>{b64(key.checksum)}</CHECKSUM>"
    else:
        items = "".join(_kid_element(k) for k in header.keys)
        protect = f"<PROTECTINFO>{items if header.version == '4.1.0.0' else '<KIDS>' + items + '</KIDS>'}</PROTECTINFO>"
        kid = ""
    urls = "".join(
        f"<{name}>{e(value)}</{name}>"
        for name, value in (("LA_URL", header.la_url), ("LUI_URL", header.lui_url), ("DS_ID", header.ds_id))
        if value
    )
    return (f'<WRMHEADER xmlns="{HEADER_NS}" version="{header.version}">'
            f"<DATA>{protect}{kid}{urls}</DATA></WRMHEADER>")


def _kid_element(key: HeaderKey) -> str:
    attrs = f' ALGID="{key.algid}"' if key.algid else ""
    if key.checksum:
        attrs += f' CHECKSUM="{xmlsafe.b64encode(key.checksum)}"'
    return f'<KID{attrs} VALUE="{kid_to_header(key.kid)}"></KID>'


# -------------------------------------------------------- PRO and PSSH box

def build_pro(wrmheader_xml: str) -> bytes:
    record = wrmheader_xml.encode("utf-16-le")
    body = struct.pack("<HH", PRO_RECORD_WRMHEADER, len(record)) + record
    return struct.pack("<IH", 6 + len(body), 1) + body


def parse_pro(data: bytes) -> str:
    """The WRMHEADER text of a PlayReady Object."""
    if len(data) < 6:
        raise malformed("PlayReady Object is truncated")
    total, count = struct.unpack_from("<IH", data)
    if total != len(data):
        raise malformed("PlayReady Object length does not match its size")
    offset = 6
    for _ in range(count):
        if offset + 4 > total:
            raise malformed("PlayReady Object record header is truncated")
        kind, length = struct.unpack_from("<HH", data, offset)
        value = data[offset + 4:offset + 4 + length]
        if len(value) != length:
            raise malformed("PlayReady Object record is truncated")
        if kind == PRO_RECORD_WRMHEADER:
            try:
                return value.decode("utf-16-le").lstrip("\ufeff")
            except UnicodeDecodeError as exc:
                raise malformed("WRMHEADER record is not UTF-16LE") from exc
        offset += 4 + length
    raise malformed("PlayReady Object holds no WRMHEADER record")


def pssh_box(pro: bytes) -> bytes:
    """A version-0 ``pssh`` box with the PlayReady system id and ``pro`` as data."""
    payload = b"\x00\x00\x00\x00" + SYSTEM_ID + struct.pack(">I", len(pro)) + pro
    return struct.pack(">I", 8 + len(payload)) + b"pssh" + payload


def pro_from_pssh(box: bytes) -> bytes:
    if len(box) < 32 or box[4:8] != b"pssh" or struct.unpack_from(">I", box)[0] != len(box):
        raise malformed("not a pssh box")
    if box[12:28] != SYSTEM_ID:
        raise malformed("the pssh box is not PlayReady's")
    version = box[8]
    offset = 28
    if version == 1:
        (count,) = struct.unpack_from(">I", box, offset)
        offset += 4 + 16 * count
    (size,) = struct.unpack_from(">I", box, offset)
    data = box[offset + 4:offset + 4 + size]
    if len(data) != size:
        raise malformed("pssh data is truncated")
    return data
