"""Manifest post-processing for ``license-server package`` (pure text in, text out).

Shaka Packager writes the MPD, the HLS playlists and every PSSH box. Two
pieces of signalling it does not write are added here:

* the DASH-IF Clear Key ``ContentProtection`` (scheme
  ``urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e``, value ``ClearKey1.0``),
  optionally with the license URL as ``dashif:Laurl`` (DASH-IF CPS namespace)
  and ``clearkey:Laurl`` (the older DASH-IF Clear Key namespace that dash.js
  reads), just before the common-PSSH ``ContentProtection`` (both map to
  ``org.w3.clearkey``; players such as Shaka take the license URL of the
  first one, so the element carrying the URL must come first);
* one FairPlay ``skd://`` key URI per rendition in the HLS media playlists
  (the packager takes a single global key URI), and no bogus ``identity``
  key line pointing at an ``skd://`` URI.

It also reads back what the MPD says about each rendition (bandwidth,
duration, segment names) for ``package.json``. XML is parsed with defusedxml.
"""

from __future__ import annotations

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
    """Add DASH-IF Clear Key ``ContentProtection`` to every protected AdaptationSet."""
    root = SafeET.fromstring(mpd)
    for adaptation in root.iter(_q("AdaptationSet")):
        children = list(adaptation)
        protections = [c for c in children if c.tag == _q("ContentProtection")]
        if not protections or any(p.get("schemeIdUri", "").lower() == DASHIF_CLEARKEY_SCHEME for p in protections):
            continue
        common = next((p for p in protections if p.get("schemeIdUri", "").lower() == _COMMON_SCHEME), protections[-1])
        element = ET.Element(_q("ContentProtection"), {"schemeIdUri": DASHIF_CLEARKEY_SCHEME, "value": "ClearKey1.0"})
        if license_url:
            ET.SubElement(element, _q("Laurl", DASHIF_NS)).text = license_url
            ET.SubElement(element, _q("Laurl", CLEARKEY_NS), {"Lic_type": "EME-1.0"}).text = license_url
        adaptation.insert(children.index(common), element)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


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
