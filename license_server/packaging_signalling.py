"""Manifest post-processing for ``license-server package`` (pure text in, text out).

Shaka Packager writes the MPD, the HLS playlists and every PSSH box. This
module fixes the signalling so that dash.js, Shaka Player and hls.js all play
the package with Clear Key licenses:

* MPD: the DASH-IF Clear Key ``ContentProtection`` (scheme
  ``urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e``, value ``ClearKey1.0``),
  optionally with the license URL as ``dashif:Laurl`` (DASH-IF CPS namespace)
  and ``clearkey:Laurl`` (the older DASH-IF Clear Key namespace that dash.js
  reads), *replaces* the W3C common-system (``1077efec``) element. dash.js
  maps both UUIDs to ``org.w3.clearkey``, and for that key system it always
  calls ``generateRequest("keyids", initData)``: from the DASH-IF element
  (no ``cenc:pssh``) it builds keyids JSON from ``cenc:default_KID``, which
  works, but from the common-system element it passes the ``cenc:pssh`` box
  itself, which the CDM refuses (TypeError). When the application configures
  a Clear Key license URL, dash.js prefers the common-system element, so it
  must not be in the MPD. The common PSSH box stays in every init segment,
  where CDMs and the device emulator read it (DASH-IF IOP 4.1, 7.6.2.4).
* HLS: every media playlist gets a Clear Key key line
  ``KEYFORMAT="org.w3.clearkey"`` with the rendition's KID as ``KEYID=0x..``
  and as the bytes of a ``data:`` URI (the two places hls.js reads it); the
  packager's ``KEYFORMAT="identity"`` lines go, because by the HLS spec an
  identity URI *is the key* (the packager writes the KID there, and players
  then decrypt with the KID as the key).
* HLS ``cbcs``: one FairPlay ``skd://`` key URI per rendition (the packager
  takes a single global key URI).

It also reads back what the MPD says about each rendition (bandwidth,
duration, segment names) for ``package.json``. XML is parsed with defusedxml.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from defusedxml import ElementTree as SafeET

from license_server.protocols.clearkey import COMMON_PSSH_SYSTEM_ID, DASHIF_CLEARKEY_SCHEME

MPD_NS = "urn:mpeg:dash:schema:mpd:2011"
DASHIF_NS = "https://dashif.org/CPS"
CLEARKEY_NS = "http://dashif.org/guidelines/clearKey"
NAMESPACES = {
    "": MPD_NS,
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "xlink": "http://www.w3.org/1999/xlink",
    "cenc": "urn:mpeg:cenc:2013",
    "mspr": "urn:microsoft:playready",
    "dashif": DASHIF_NS,
    "clearkey": CLEARKEY_NS,
}
for _prefix, _uri in NAMESPACES.items():
    ET.register_namespace(_prefix, _uri)

FAIRPLAY_KEY_URI_PLACEHOLDER = "skd://drm-emulator-key-uri"
_COMMON_SCHEME = f"urn:uuid:{COMMON_PSSH_SYSTEM_ID}"


def _q(tag: str, ns: str = MPD_NS) -> str:
    return f"{{{ns}}}{tag}"


def add_clearkey_signalling(mpd: str, license_url: str | None = None) -> str:
    """Give every protected AdaptationSet the DASH-IF Clear Key ``ContentProtection`` in place of the
    common-system one (see the module docstring for why dash.js needs that)."""
    root = SafeET.fromstring(mpd)
    for adaptation in root.iter(_q("AdaptationSet")):
        protections = [c for c in adaptation if c.tag == _q("ContentProtection")]
        if not protections:
            continue
        scheme = [p.get("schemeIdUri", "").lower() for p in protections]
        if DASHIF_CLEARKEY_SCHEME not in scheme:
            element = ET.Element(_q("ContentProtection"),
                                 {"schemeIdUri": DASHIF_CLEARKEY_SCHEME, "value": "ClearKey1.0"})
            if license_url:
                ET.SubElement(element, _q("Laurl", DASHIF_NS)).text = license_url
                ET.SubElement(element, _q("Laurl", CLEARKEY_NS), {"Lic_type": "EME-1.0"}).text = license_url
            anchor = next((p for p, s in zip(protections, scheme) if s == _COMMON_SCHEME), protections[-1])
            adaptation.insert(list(adaptation).index(anchor), element)
        for protection, uri in zip(protections, scheme):
            if uri == _COMMON_SCHEME:
                adaptation.remove(protection)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


_KEY_TAG = "#EXT-X-KEY:"
_METHOD = re.compile(r"METHOD=([A-Z0-9-]+)")
CLEARKEY_KEYFORMAT = "org.w3.clearkey"


def clearkey_key_line(kid: bytes, method: str) -> str:
    """The HLS Clear Key key line of a rendition: the KID as ``KEYID`` and as a ``data:`` URI."""
    uri = "data:text/plain;base64," + base64.b64encode(kid).decode("ascii")
    return (f'{_KEY_TAG}METHOD={method},URI="{uri}",KEYID=0x{kid.hex()},KEYFORMATVERSIONS="1",'
            f'KEYFORMAT="{CLEARKEY_KEYFORMAT}"')


def add_clearkey_key_line(playlist: str, kid: bytes) -> str:
    """Put a Clear Key key line first among the playlist's key lines; drop the ``identity`` ones."""
    lines, added = [], f'KEYFORMAT="{CLEARKEY_KEYFORMAT}"' in playlist
    for line in playlist.splitlines():
        method = _METHOD.search(line) if line.startswith(_KEY_TAG) else None
        if method and method.group(1) != "NONE":
            if not added:
                lines.append(clearkey_key_line(kid, method.group(1)))
                added = True
            if 'KEYFORMAT="identity"' in line or "KEYFORMAT=" not in line:
                continue
        lines.append(line)
    if not added:
        raise ValueError("the playlist has no encrypted key line")
    return "\n".join(lines) + "\n"


def set_fairplay_key_uri(playlist: str, key_uri: str) -> str:
    """Point the playlist's FairPlay key line at ``key_uri``; drop identity lines using the placeholder."""
    lines = []
    for line in playlist.splitlines():
        if FAIRPLAY_KEY_URI_PLACEHOLDER in line:
            if 'KEYFORMAT="identity"' in line:
                continue
            line = line.replace(FAIRPLAY_KEY_URI_PLACEHOLDER, key_uri)
        lines.append(line)
    return "\n".join(lines) + "\n"


def fairplay_key_uri(kid: bytes) -> str:
    """The ``skd://`` URI of a rendition: the KID in hex, which the license server maps to its title."""
    return f"skd://{kid.hex()}"


@dataclass(frozen=True)
class RenditionFacts:
    """What the MPD says about one Representation."""

    init: str
    segments: tuple[str, ...]
    bandwidth: int
    duration: float
    default_kid: bytes | None


def read_renditions(mpd: str) -> dict[str, RenditionFacts]:
    """Renditions of the MPD keyed by the init segment's directory (``audio``, ``sd``, ...)."""
    root = SafeET.fromstring(mpd)
    facts: dict[str, RenditionFacts] = {}
    for adaptation in root.iter(_q("AdaptationSet")):
        kid = None
        for protection in adaptation.findall(_q("ContentProtection")):
            value = protection.get(_q("default_KID", NAMESPACES["cenc"]))
            if value:
                kid = bytes.fromhex(value.replace("-", ""))
        for representation in adaptation.findall(_q("Representation")):
            template = representation.find(_q("SegmentTemplate"))
            if template is None:
                continue
            init, media = template.get("initialization", ""), template.get("media", "")
            timescale = int(template.get("timescale", "1"))
            number = int(template.get("startNumber", "1"))
            total, segments = 0, []
            for s in template.iter(_q("S")):
                for _ in range(int(s.get("r", "0")) + 1):
                    segments.append(media.replace("$Number$", str(number)))
                    number += 1
                    total += int(s.get("d", "0"))
            facts[init.split("/")[0]] = RenditionFacts(
                init=init, segments=tuple(segments), bandwidth=int(representation.get("bandwidth", "0")),
                duration=round(total / timescale, 3), default_kid=kid,
            )
    return facts


_PSSH_SCHEME = re.compile(r'schemeIdUri="urn:uuid:([0-9a-fA-F-]{36})"')


def mpd_system_ids(mpd: str) -> set[str]:
    """The ``urn:uuid:`` system ids signalled in an MPD (for checks and tests)."""
    return {m.lower() for m in _PSSH_SCHEME.findall(mpd)}
