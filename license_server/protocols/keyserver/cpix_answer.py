"""The CPIX 2.3 answer of the key service (sans-I/O): keys, DRM signalling, periods, usage rules.

Element order, namespaces and required attributes follow the CPIX 2.3 schema:
``CPIX`` (``contentId``, ``version``) holds ``ContentKeyList``, ``DRMSystemList``,
``ContentKeyPeriodList``, ``ContentKeyUsageRuleList`` in that order;
``ContentKey`` (``kid``, ``commonEncryptionScheme``, ``explicitIV``) holds
``Data/pskc:Secret/pskc:PlainValue``; ``DRMSystem`` (``kid``, ``systemId``)
holds ``PSSH``, ``ContentProtectionData``, ``URIExtXKey``, ``HLSSignalingData``
(``playlist`` media, then master), in that order, each base64.
"""

from __future__ import annotations

import base64
import struct
import uuid
from dataclasses import dataclass
from xml.etree import ElementTree as ET
from xml.etree.ElementTree import Element

from license_server.protocols.keyserver import widevine_cenc
from license_server.protocols.keyserver.cpix import (
    CLEARKEY,
    CPIX_NS,
    CPIX_VERSION,
    FAIRPLAY,
    PLAYREADY,
    PSKC_NS,
    SIGNALLING,
    WIDEVINE,
    Period,
)
from license_server.protocols.playready import wrmheader

KEYFORMAT = {WIDEVINE: f"urn:uuid:{WIDEVINE}", PLAYREADY: "com.microsoft.playready",
             FAIRPLAY: "com.apple.streamingkeydelivery", CLEARKEY: f"urn:uuid:{CLEARKEY}"}
CENC_NS, MSPR_NS = "urn:mpeg:cenc:2013", "urn:microsoft:playready"


@dataclass(frozen=True)
class AnswerKey:
    kid: bytes
    key: bytes
    scheme: str
    track: str
    period_id: str | None = None
    explicit_iv: bytes | None = None
    filters: tuple[Element, ...] = ()


@dataclass(frozen=True)
class AnswerSystem:
    kid: bytes
    system_id: str
    wanted: tuple[str, ...]  # empty: every signalling element that applies to the system


def _q(name: str, ns: str = CPIX_NS) -> str:
    return f"{{{ns}}}{name}"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def pssh_box(system_id: str, data: bytes, kids: tuple[bytes, ...] | None = None) -> bytes:
    """A ``pssh`` box: version 1 with ``kids`` when given, else version 0."""
    body = uuid.UUID(system_id).bytes
    if kids is not None:
        body += struct.pack(">I", len(kids)) + b"".join(kids)
    payload = (b"\x01" if kids is not None else b"\x00") + b"\x00\x00\x00" + body + struct.pack(">I", len(data)) + data
    return struct.pack(">I", 8 + len(payload)) + b"pssh" + payload


def signalling(system_id: str, key: AnswerKey,
               pssh_content_id: bytes | None) -> dict[str, list[tuple[dict[str, str], bytes]]]:
    """Every signalling element that applies to ``system_id`` for ``key``: name -> [(attributes, bytes)].
    ``pssh_content_id``: the content id the Widevine PSSH names (None: KIDs only)."""
    kid_hex = key.kid.hex()
    out: dict[str, list[tuple[dict[str, str], bytes]]] = {}
    method = "SAMPLE-AES" if key.scheme in ("cbcs", "cbc1") else "SAMPLE-AES-CTR"
    if system_id == FAIRPLAY:
        uri = f"skd://{kid_hex}"
    else:
        if system_id == WIDEVINE:
            data = widevine_cenc.pssh_data(pssh_content_id, [key.kid], widevine_cenc.SCHEMES[key.scheme.upper()])
            box = pssh_box(WIDEVINE, data)
            protection = f'<cenc:pssh xmlns:cenc="{CENC_NS}">{_b64(box)}</cenc:pssh>'
        elif system_id == PLAYREADY:
            algid = wrmheader.AESCBC if key.scheme in ("cbcs", "cbc1") else wrmheader.AESCTR
            version = "4.3.0.0" if algid == wrmheader.AESCBC else "4.0.0.0"
            header = wrmheader.WrmHeader(version, (wrmheader.HeaderKey(
                key.kid, algid, wrmheader.kid_checksum(key.kid, key.key, algid)),))
            pro = wrmheader.build_pro(wrmheader.build_wrmheader(header))
            box = wrmheader.pssh_box(pro)
            protection = (f'<cenc:pssh xmlns:cenc="{CENC_NS}">{_b64(box)}</cenc:pssh>'
                          f'<mspr:pro xmlns:mspr="{MSPR_NS}">{_b64(pro)}</mspr:pro>')
        else:  # Clear Key: the W3C common PSSH (version 1, KIDs, no data)
            box = pssh_box(CLEARKEY, b"", (key.kid,))
            protection = f'<cenc:pssh xmlns:cenc="{CENC_NS}">{_b64(box)}</cenc:pssh>'
        out["PSSH"] = [({}, box)]
        out["ContentProtectionData"] = [({}, protection.encode("utf-8"))]
        uri = "data:text/plain;base64," + _b64(box)
    out["URIExtXKey"] = [({}, uri.encode("ascii"))]
    attrs = (f'METHOD={method},URI="{uri}",KEYID=0x{kid_hex},KEYFORMAT="{KEYFORMAT[system_id]}",'
             f'KEYFORMATVERSIONS="1"')
    out["HLSSignalingData"] = [({"playlist": "media"}, f"#EXT-X-KEY:{attrs}".encode("ascii")),
                               ({"playlist": "master"}, f"#EXT-X-SESSION-KEY:{attrs}".encode("ascii"))]
    return out


def build_answer(content_id: str, keys: list[AnswerKey], systems: list[AnswerSystem],
                 periods: tuple[Period, ...], pssh_content_id: bytes | None = None) -> bytes:
    """The CPIX 2.3 document answering a SPEKE v2 request (or ``GET /cpix/<content_id>``)."""
    ET.register_namespace("cpix", CPIX_NS)
    ET.register_namespace("pskc", PSKC_NS)
    root = Element(_q("CPIX"), {"contentId": content_id, "version": CPIX_VERSION})
    key_list = ET.SubElement(root, _q("ContentKeyList"))
    for key in keys:
        attrs = {"kid": str(uuid.UUID(bytes=key.kid)), "commonEncryptionScheme": key.scheme}
        if key.explicit_iv is not None:
            attrs["explicitIV"] = _b64(key.explicit_iv)
        secret = ET.SubElement(ET.SubElement(ET.SubElement(key_list, _q("ContentKey"), attrs), _q("Data")),
                               _q("Secret", PSKC_NS))
        ET.SubElement(secret, _q("PlainValue", PSKC_NS)).text = _b64(key.key)
    if systems:
        by_kid = {k.kid: k for k in keys}
        system_list = ET.SubElement(root, _q("DRMSystemList"))
        for system in systems:
            element = ET.SubElement(system_list, _q("DRMSystem"),
                                    {"kid": str(uuid.UUID(bytes=system.kid)), "systemId": system.system_id})
            data = signalling(system.system_id, by_kid[system.kid], pssh_content_id)
            for name in SIGNALLING:  # schema order
                if system.wanted and name not in system.wanted:
                    continue
                for attrs, raw in data.get(name, []):
                    ET.SubElement(element, _q(name), attrs).text = _b64(raw)
    if periods:
        period_list = ET.SubElement(root, _q("ContentKeyPeriodList"))
        for period in periods:
            ET.SubElement(period_list, _q("ContentKeyPeriod"), {"id": period.id, "index": str(period.index)})
    rule_list = ET.SubElement(root, _q("ContentKeyUsageRuleList"))
    for key in keys:
        rule = ET.SubElement(rule_list, _q("ContentKeyUsageRule"),
                             {"kid": str(uuid.UUID(bytes=key.kid)), "intendedTrackType": key.track})
        if key.period_id is not None:
            ET.SubElement(rule, _q("KeyPeriodFilter"), {"periodId": key.period_id})
        for media_filter in key.filters:  # VideoFilter before AudioFilter, as the schema orders them
            if media_filter.tag == _q("VideoFilter"):
                ET.SubElement(rule, media_filter.tag, dict(media_filter.attrib))
        for media_filter in key.filters:
            if media_filter.tag == _q("AudioFilter"):
                ET.SubElement(rule, media_filter.tag, dict(media_filter.attrib))
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
