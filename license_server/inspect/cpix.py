"""DASH-IF CPIX documents (``urn:dashif:org:cpix``): content keys, DRM systems, usage rules.

Key values (``Secret/PlainValue``, ``EncryptedValue``) are never shown; the
PSSH and signalling data each DRM system carries are decoded by the other
inspector modules. Element and attribute names are CPIX's own.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from license_server.errors import DrmError
from license_server.inspect.model import Context, Decoded, NotMine
from license_server.protocols.playready import xmlsafe

CPIX_NS = "urn:dashif:org:cpix"


def _b64(text: str | None) -> bytes | None:
    if not text:
        return None
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _pssh(value: bytes | None) -> Any:
    from license_server.inspect import pssh

    if value is None:
        return None
    try:
        return pssh.decode(value, Context()).fields["boxes"]
    except NotMine:
        return f"{len(value)} bytes (not a pssh box)"


def _content_key(element: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {k: v for k, v in element.attrib.items()}
    secret = [c for c in element.iter() if xmlsafe.local(c.tag) in ("PlainValue", "EncryptedValue", "CipherValue")]
    if secret:
        kinds = sorted({xmlsafe.local(c.tag) for c in secret})
        entry["Data"] = f"<{', '.join(kinds)} present, not shown>"
    return entry


def _drm_system(element: Any) -> dict[str, Any]:
    entry: dict[str, Any] = dict(element.attrib)
    for part in element:
        name = xmlsafe.local(part.tag)
        text = (part.text or "").strip()
        entry[name] = _pssh(_b64(text)) if name == "PSSH" else (text[:200] if text else dict(part.attrib))
    return entry


def decode_xml(root: Any) -> Decoded:
    if xmlsafe.local(root.tag) != "CPIX" or xmlsafe.namespace(root.tag) != CPIX_NS:
        raise NotMine("not a CPIX document")
    lists: dict[str, list[Any]] = {}
    for section in root:
        name = xmlsafe.local(section.tag)
        items = list(section)
        if name == "ContentKeyList":
            lists[name] = [_content_key(c) for c in items]
        elif name == "DRMSystemList":
            lists[name] = [_drm_system(c) for c in items]
        else:
            lists[name] = [{xmlsafe.local(c.tag): dict(c.attrib)} for c in items] or [dict(section.attrib)]
    keys, systems = len(lists.get("ContentKeyList", [])), len(lists.get("DRMSystemList", []))
    entries = "entry" if systems == 1 else "entries"
    return Decoded("cpix", f"CPIX document: {keys} content key(s), {systems} DRM system {entries}",
                   {"attributes": dict(root.attrib), **lists},
                   notes=["content key values are never shown"])


def decode(data: bytes, context: Context) -> Decoded:
    try:
        root = xmlsafe.parse(data, what="XML", limit=1024 * 1024)
    except DrmError as exc:
        raise NotMine(exc.message) from exc
    return decode_xml(root)
