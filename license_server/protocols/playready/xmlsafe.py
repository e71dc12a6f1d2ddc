"""Safe XML for the PlayReady-style dialect.

Every byte of XML this dialect reads goes through :func:`parse`, which uses
``defusedxml`` with DTDs, entity declarations and external references
forbidden, after a size check. A billion-laughs or XXE document fails fast
with ``MALFORMED_CHALLENGE`` before any expansion or fetch can happen.

Elements are matched by local name (namespaces are checked where they matter
by the callers), and values are read through small strict helpers.
"""

from __future__ import annotations

import base64
import binascii
import re
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape as _escape
from xml.sax.saxutils import quoteattr

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from license_server.errors import DrmError, ErrorCode, malformed

__all__ = ["Element", "parse", "local", "child", "require", "children", "text", "optional_text", "b64decode",
           "integer", "escape", "attr", "raw_element"]


def parse(data: bytes | str, *, what: str, limit: int) -> Element:
    """Parse ``data`` safely; oversized, DTD-bearing or ill-formed XML is refused."""
    size = len(data.encode("utf-8") if isinstance(data, str) else data)
    if size > limit:
        raise DrmError(ErrorCode.CHALLENGE_TOO_LARGE, f"{what} is larger than {limit} bytes")
    if not size:
        raise malformed(f"{what} is empty")
    try:
        root: Element = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise malformed(f"{what}: DTDs, entity declarations and external references are refused "
                        f"({type(exc).__name__})") from exc
    except (ParseError, ValueError, UnicodeError, LookupError) as exc:  # LookupError: unknown declared encoding
        raise malformed(f"{what} is not well-formed XML") from exc
    return root


def local(tag: str) -> str:
    """``{namespace}Name`` -> ``Name``."""
    return tag.rsplit("}", 1)[-1]


def namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def child(element: Element, name: str) -> Element | None:
    """The single child called ``name``; a duplicate is malformed."""
    found = [c for c in element if local(c.tag) == name]
    if len(found) > 1:
        raise malformed(f"<{local(element.tag)}> has more than one <{name}>")
    return found[0] if found else None


def require(element: Element, name: str) -> Element:
    found = child(element, name)
    if found is None:
        raise malformed(f"<{local(element.tag)}> lacks <{name}>")
    return found


def children(element: Element, name: str) -> list[Element]:
    return [c for c in element if local(c.tag) == name]


def path(element: Element, *names: str) -> Element:
    """Walk required children: ``path(env, "Body", "AcquireLicense")``."""
    for name in names:
        element = require(element, name)
    return element


def text(element: Element, name: str) -> str:
    value = (require(element, name).text or "").strip()
    if not value:
        raise malformed(f"<{name}> is empty")
    return value


def optional_text(element: Element, name: str) -> str | None:
    found = child(element, name)
    if found is None:
        return None
    return (found.text or "").strip() or None


def b64decode(value: str, what: str, *, size: int | None = None) -> bytes:
    try:
        data = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise malformed(f"{what} is not base64") from exc
    if size is not None and len(data) != size:
        raise malformed(f"{what} must be {size} bytes, not {len(data)}")
    return data


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


_INT = re.compile(r"-?\d{1,19}\Z")


def integer(value: str, what: str, *, minimum: int = 0, maximum: int = 2**63 - 1) -> int:
    if not _INT.match(value.strip()):
        raise malformed(f"{what} is not an integer")
    number = int(value)
    if not minimum <= number <= maximum:
        raise malformed(f"{what} is out of range")
    return number


def escape(value: str) -> str:
    return _escape(value)


def attr(value: str) -> str:
    """A quoted, escaped attribute value."""
    return quoteattr(value)


def raw_element(body: bytes, name: str) -> bytes:
    """The exact bytes of the one unprefixed element ``name`` in ``body``.

    Signatures cover these bytes as transmitted (no canonicalization). The
    element must occur exactly once, unprefixed; anything else is refused.
    """
    opens = [m.start() for m in re.finditer(rb"<" + name.encode() + rb"[\s>/]", body)]
    closes = [m.end() for m in re.finditer(rb"</" + name.encode() + rb"\s*>", body)]
    if len(opens) != 1 or len(closes) != 1 or closes[0] <= opens[0]:
        raise malformed(f"the signed <{name}> element must occur exactly once, unprefixed")
    return body[opens[0]:closes[0]]
