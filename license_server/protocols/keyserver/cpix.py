"""CPIX 2.3 documents as SPEKE v2.0 exchanges them (sans-I/O): the request model and its parser.

A SPEKE v2 request (``X-Speke-Version: 2.0``) is a CPIX document naming
``CPIX@contentId`` and ``CPIX@version`` (2.3), the wanted ``ContentKey``s
(``kid``, ``commonEncryptionScheme``, optional ``explicitIV``), the
``DRMSystem``s whose signalling to fill (``kid``, ``systemId``; the child
elements present are the ones asked for), the ``ContentKeyPeriod``s of key
rotation (``id``, ``index``) and one ``ContentKeyUsageRule`` per key
(``kid``, ``intendedTrackType``, ``KeyPeriodFilter@periodId``).

SPEKE's documented refusals are HTTP 422 with a fixed message ("Missing
CPIX@contentId", "Unsupported CPIX@version", ...); the message is kept and our
stable code goes beside it. The building of the answer is :mod:`.cpix_answer`.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from license_server.errors import DrmError, ErrorCode
from license_server.protocols.keyserver.xmlbody import parse_body

CPIX_NS = "urn:dashif:org:cpix"
PSKC_NS = "urn:ietf:params:xml:ns:keyprov:pskc"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
CPIX_VERSION = "2.3"
SPEKE_VERSION = "2.0"
MAX_BODY_BYTES = 256 * 1024
MAX_KEYS = 200
SCHEMES = ("cenc", "cbcs", "cbc1", "cens")
TRACK_TYPES = ("SD", "HD", "UHD1", "UHD2", "AUDIO")
WIDEVINE = "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
PLAYREADY = "9a04f079-9840-4286-ab92-e65be0885f95"
FAIRPLAY = "94ce86fb-07ff-4f43-adb8-93d2fa968ca2"
CLEARKEY = "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"  # W3C common PSSH system (org.w3.clearkey)
SYSTEMS = (WIDEVINE, PLAYREADY, FAIRPLAY, CLEARKEY)
SIGNALLING = ("PSSH", "ContentProtectionData", "URIExtXKey", "HLSSignalingData")
_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*\Z")


def invalid(message: str, code: ErrorCode = ErrorCode.KEYSERVER_CPIX_INVALID) -> DrmError:
    return DrmError(code, message)


@dataclass(frozen=True)
class RequestedKey:
    kid: bytes  # as the encryptor named it (the answer overrides it with the derived KID)
    scheme: str
    explicit_iv: bytes | None
    track: str
    period: int | None
    period_id: str | None


@dataclass(frozen=True)
class RequestedSystem:
    kid: bytes
    system_id: str
    wanted: tuple[str, ...]  # signalling element names asked for; empty: every one we know


@dataclass(frozen=True)
class Period:
    id: str
    index: int


@dataclass(frozen=True)
class CpixRequest:
    content_id: str
    keys: tuple[RequestedKey, ...]
    systems: tuple[RequestedSystem, ...] = ()
    periods: tuple[Period, ...] = ()
    filters: dict[bytes, tuple[Element, ...]] = field(default_factory=dict)  # Video/AudioFilter of each rule


def _q(name: str, ns: str = CPIX_NS) -> str:
    return f"{{{ns}}}{name}"


def parse_kid(value: str | None, what: str) -> bytes:
    try:
        return uuid.UUID(value or "").bytes
    except ValueError as exc:
        raise invalid(f"{what} is not a UUID") from exc


def check_speke_version(header: str | None) -> None:
    if (header or "").strip() != SPEKE_VERSION:
        raise invalid("Unsupported SPEKE version", ErrorCode.KEYSERVER_UNSUPPORTED_VERSION)


def parse_request(body: bytes) -> CpixRequest:
    """The keys a SPEKE v2 CPIX request asks for; refusals carry SPEKE's messages."""
    root = parse_body(body)
    if root.tag != _q("CPIX"):
        raise DrmError(ErrorCode.KEYSERVER_MALFORMED_REQUEST, f"the root element is not {{{CPIX_NS}}}CPIX")
    content_id = (root.get("contentId") or "").strip()
    if not content_id:
        raise invalid("Missing CPIX@contentId", ErrorCode.KEYSERVER_CPIX_CONTENT_ID_MISSING)
    version = root.get("version")
    if version is None:
        raise invalid("Missing CPIX@version", ErrorCode.KEYSERVER_UNSUPPORTED_VERSION)
    if version != CPIX_VERSION:
        raise invalid("Unsupported CPIX@version", ErrorCode.KEYSERVER_UNSUPPORTED_VERSION)
    periods = _periods(root)
    rules = _rules(root, {p.id: p for p in periods})
    keys = []
    for element in root.iterfind(f"{_q('ContentKeyList')}/{_q('ContentKey')}"):
        kid = parse_kid(element.get("kid"), "ContentKey@kid")
        scheme = element.get("commonEncryptionScheme")
        if not scheme:
            raise invalid(f"Missing ContentKey@commonEncryptionScheme for KID {uuid.UUID(bytes=kid)}")
        if scheme not in SCHEMES:
            raise invalid(f"Unsupported ContentKey@commonEncryptionScheme {scheme[:8]!r}")
        if kid not in rules:
            raise invalid(f"No ContentKeyUsageRule for KID {uuid.UUID(bytes=kid)}")
        track, period = rules[kid][0], rules[kid][1]
        keys.append(RequestedKey(kid, scheme, _iv(element.get("explicitIV")), track,
                                 period.index if period else None, period.id if period else None))
    if not keys:
        raise invalid("The CPIX document requests no ContentKey")
    if len(keys) > MAX_KEYS:
        raise invalid(f"At most {MAX_KEYS} content keys per request")
    if len({k.scheme for k in keys}) > 1:
        raise invalid("Non compliant ContentKey@commonEncryptionScheme combination")
    known = {k.kid for k in keys}
    systems = []
    for element in root.iterfind(f"{_q('DRMSystemList')}/{_q('DRMSystem')}"):
        kid = parse_kid(element.get("kid"), "DRMSystem@kid")
        system_id = (element.get("systemId") or "").lower()
        if kid not in known:
            raise invalid(f"DRMSystem names KID {uuid.UUID(bytes=kid)}, which no ContentKey requests")
        if system_id not in SYSTEMS:
            raise invalid(f"Unsupported DRMSystem@systemId {system_id[:40]!r}")
        wanted = tuple(dict.fromkeys(child.tag.split("}")[-1] for child in element
                                     if child.tag.split("}")[-1] in SIGNALLING))
        systems.append(RequestedSystem(kid, system_id, wanted))
    return CpixRequest(content_id, tuple(keys), tuple(systems), periods,
                       {kid: rule[2] for kid, rule in rules.items()})


def _periods(root: Element) -> tuple[Period, ...]:
    periods = []
    for element in root.iterfind(f"{_q('ContentKeyPeriodList')}/{_q('ContentKeyPeriod')}"):
        pid, index = element.get("id") or "", element.get("index")
        if not _NCNAME.match(pid):
            raise invalid("ContentKeyPeriod@id must be an xs:ID")
        if index is None or not index.isdigit() or int(index) >= 2**32:
            raise invalid(f"ContentKeyPeriod {pid} needs an index (SPEKE tracks periods by index)")
        periods.append(Period(pid, int(index)))
    return tuple(periods)


def _rules(root: Element, periods: dict[str, Period]) -> dict[bytes, tuple[str, Period | None, tuple[Element, ...]]]:
    rules: dict[bytes, tuple[str, Period | None, tuple[Element, ...]]] = {}
    for element in root.iterfind(f"{_q('ContentKeyUsageRuleList')}/{_q('ContentKeyUsageRule')}"):
        kid = parse_kid(element.get("kid"), "ContentKeyUsageRule@kid")
        track = element.get("intendedTrackType") or ""
        if track not in TRACK_TYPES:
            raise invalid(f"Unsupported ContentKeyUsageRule@intendedTrackType {track[:16]!r} "
                          f"(use {', '.join(TRACK_TYPES)})")
        filters = element.findall(_q("KeyPeriodFilter"))
        if len(filters) > 1:
            raise invalid("A ContentKeyUsageRule names at most one KeyPeriodFilter here")
        period = None
        if filters:
            period = periods.get(filters[0].get("periodId") or "")
            if period is None:
                raise invalid("KeyPeriodFilter@periodId names no ContentKeyPeriod")
        media = tuple(e for e in element if e.tag in (_q("VideoFilter"), _q("AudioFilter")))
        rules[kid] = (track, period, media)
    return rules


def _iv(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        iv = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid("ContentKey@explicitIV is not base64") from exc
    if len(iv) not in (8, 16):
        raise invalid("ContentKey@explicitIV must be 8 or 16 bytes")
    return iv
