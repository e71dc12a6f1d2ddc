"""The revocation list of a namespace: its ``revocations`` state document (see
:mod:`license_server.store_api`), shared by every worker and replica.

Format::

    {"devices": ["<device id hex>", ...], "system_ids": [7101, ...], "key_ids": ["<KID hex>", ...],
     "notes": {"device:<id>": {"reason": "...", "revoked_at": 1800000000}, "system_id:7101": {...}}}

``key_ids`` revokes content keys: licenses holding them are refused (KEY_REVOKED).
``notes`` (optional) records why and when an entry was added (the admin API
writes it); the lists alone decide who is revoked.

The admin API writes it (``POST/DELETE /admin/revocations``). Servers before namespaces kept it
in ``<data_dir>/revocations.json``: the default namespace imports that file once, on first open,
when it has no document yet (see :mod:`license_server.namespaces`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from license_server.core.attestation import Revocations
from license_server.errors import DrmError, ErrorCode
from license_server.store_api import REVOCATIONS_DOCUMENT, StateDocuments

if TYPE_CHECKING:
    from license_server.keyring import Keyring

log = logging.getLogger(__name__)


class RevocationList:
    """A namespace's revocation list, kept in its ``revocations`` state document.

    :meth:`load` parses the document (the namespace's refresh calls it when the store's state
    generation moved, so a revocation made by any worker applies from the next request on);
    :meth:`revoke` and :meth:`unrevoke` edit it in one store transaction.
    """

    def __init__(self, documents: StateDocuments) -> None:
        self.documents = documents
        self._current = Revocations()

    def current(self) -> Revocations:
        return self._current

    def load(self, text: str | None) -> None:
        if text is None:
            self._current = Revocations()
            return
        try:
            doc = json.loads(text)
            self._current = Revocations(
                devices=frozenset(str(d).lower() for d in doc.get("devices", [])),
                system_ids=frozenset(int(s) for s in doc.get("system_ids", [])),
                key_ids=frozenset(bytes.fromhex(str(k)) for k in doc.get("key_ids", [])),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            # Fail closed would refuse everyone; keep the last good list and say so.
            log.error("ignoring an unreadable revocation list: %s", exc)

    def revoke(self, *, device_id: str | None = None, system_id: int | None = None,
               key_id: bytes | None = None, reason: str | None = None, now: int | None = None) -> None:
        """Add an entry (used by the admin API and tests)."""

        def change(doc: dict) -> bool:
            if key_id is not None and key_id.hex() not in doc["key_ids"]:
                doc["key_ids"].append(key_id.hex())
            if device_id and device_id.lower() not in doc["devices"]:
                doc["devices"].append(device_id.lower())
            if system_id is not None and system_id not in doc["system_ids"]:
                doc["system_ids"].append(system_id)
            if reason is not None or now is not None:
                for key in _note_keys(device_id, system_id, key_id):
                    doc["notes"][key] = {"reason": reason, "revoked_at": now}
            return True

        self._edit(change)

    def unrevoke(self, *, device_id: str | None = None, system_id: int | None = None,
                 key_id: bytes | None = None) -> bool:
        """Remove an entry; returns False (and writes nothing) if it was not listed."""

        def change(doc: dict) -> bool:
            removed = False
            for field, value in (("devices", device_id.lower() if device_id else None), ("system_ids", system_id),
                                 ("key_ids", key_id.hex() if key_id is not None else None)):
                if value is not None and value in doc[field]:
                    doc[field] = [v for v in doc[field] if v != value]
                    removed = True
            for key in _note_keys(device_id, system_id, key_id) if removed else ():
                doc["notes"].pop(key, None)
            return removed

        return self._edit(change)

    def document(self) -> dict:
        """The stored list with every field present (empty if nothing was ever revoked)."""
        return parse_document(self.documents.document(REVOCATIONS_DOCUMENT))

    def replace(self, doc: dict) -> None:
        """Store ``doc`` as the whole list (tests, and the conformance suite's restore)."""
        self._write(lambda _: json.dumps(doc, indent=2))

    def _edit(self, change: Callable[[dict], bool]) -> bool:
        changed = [False]

        def edit(text: str | None) -> str:
            doc = parse_document(text)
            if not change(doc):
                raise _Unchanged
            changed[0] = True
            return json.dumps(doc, indent=2)

        try:
            self._write(edit)
        except _Unchanged:
            return False
        return changed[0]

    def _write(self, change: Callable[[str | None], str | None]) -> None:
        self.load(self.documents.update_document(REVOCATIONS_DOCUMENT, change))


class _Unchanged(Exception):
    """Aborts an update that changes nothing."""


def parse_document(text: str | None) -> dict:
    """A stored list with every field present; ``ValueError`` when it is not a valid list."""
    doc: dict = {}
    if text is not None:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("the revocation list is not a JSON object")
    for field in ("devices", "system_ids", "key_ids"):
        if not isinstance(doc.setdefault(field, []), list):
            raise ValueError(f"the revocation list's {field!r} is not a list")
    if not isinstance(doc.setdefault("notes", {}), dict):
        raise ValueError("the revocation list's 'notes' is not an object")
    return doc


def note_key(kind: str, value: str) -> str:
    """The key of an entry in ``notes``: ``device:<id>``, ``system_id:<n>`` or ``key_id:<hex>``."""
    return f"{kind}:{value}"


def _note_keys(device_id: str | None, system_id: int | None, key_id: bytes | None) -> list[str]:
    keys = []
    if device_id:
        keys.append(note_key("device", device_id.lower()))
    if system_id is not None:
        keys.append(note_key("system_id", str(system_id)))
    if key_id is not None:
        keys.append(note_key("key_id", key_id.hex()))
    return keys


def revocation_target(kind: str, value: str, keyring: Keyring) -> dict[str, Any]:
    """Keyword arguments for :meth:`RevocationList.revoke`/``unrevoke`` from an admin kind and value."""
    try:
        if kind == "device":
            if not value or len(value) > 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
                raise ValueError("a device id is hex")
            return {"device_id": value.lower()}
        if kind == "system_id":
            return {"system_id": int(value)}
        if kind == "key_id":
            kid = bytes.fromhex(value)
            if len(kid) != 16:
                raise ValueError("a key id is 16 bytes")
            return {"key_id": kid}
    except ValueError as exc:
        raise DrmError(ErrorCode.ADMIN_REQUEST_INVALID, f"bad {kind} {value[:80]!r}: {exc}") from exc
    model = keyring.models.get(value)
    if model is None:
        known = ", ".join(keyring.models)
        raise DrmError(ErrorCode.ADMIN_NOT_FOUND, f"no device model {value[:80]!r} (known: {known})")
    return {"system_id": model.system_id}


def stored_as(target: dict[str, Any]) -> tuple[str, str]:
    """(kind, value) of the file entry a revoke/unrevoke target names."""
    if "device_id" in target:
        return "device", target["device_id"]
    if "system_id" in target:
        return "system_id", str(target["system_id"])
    return "key_id", target["key_id"].hex()
