"""The one safe XML parse of key-service request bodies (CPIX, AcquirePackagingData)."""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from license_server.errors import DrmError, ErrorCode


def parse_body(body: bytes) -> Element:
    """The root element of ``body``; DTDs, entities and malformed XML are KEYSERVER_MALFORMED_REQUEST."""
    if not body:
        raise DrmError(ErrorCode.KEYSERVER_MALFORMED_REQUEST, "the body is empty")
    try:
        root: Element = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, ParseError, ValueError) as exc:
        raise DrmError(ErrorCode.KEYSERVER_MALFORMED_REQUEST, "the body is not well-formed XML "
                       "(DTDs and entities are refused)") from exc
    return root
