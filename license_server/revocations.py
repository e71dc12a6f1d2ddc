"""The revocation list: ``revocations.json`` in the data directory.

Format::

    {"devices": ["<device id hex>", ...], "system_ids": [7101, ...], "key_ids": ["<KID hex>", ...],
     "notes": {"device:<id>": {"reason": "...", "revoked_at": 1800000000}, "system_id:7101": {...}}}

``key_ids`` revokes content keys: licenses holding them are refused (KEY_REVOKED).
``notes`` (optional) records why and when an entry was added (the admin API
writes it); the lists alone decide who is revoked.

The file is re-read when it changes, so an operator (or a test) can revoke a
device without restarting the server.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from license_server.core.attestation import Revocations
from license_server.errors import DrmError, ErrorCode

if TYPE_CHECKING:
    from license_server.keyring import Keyring

log = logging.getLogger(__name__)


class RevocationFile:
    """Reads the revocation list, caching it until the file's mtime changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._current = Revocations()

    def current(self) -> Revocations:
        if self.path is None:
            return self._current
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._current = None, Revocations()
            return self._current
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._current = self._load()
            self._stamp = stamp
        return self._current

    def _load(self) -> Revocations:
        assert self.path is not None
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            return Revocations(
                devices=frozenset(str(d).lower() for d in doc.get("devices", [])),
                system_ids=frozenset(int(s) for s in doc.get("system_ids", [])),
                key_ids=frozenset(bytes.fromhex(str(k)) for k in doc.get("key_ids", [])),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            # Fail closed would refuse everyone; keep the last good list and say so.
            log.error("ignoring unreadable revocation list %s: %s", self.path, exc)
            return self._current

    def revoke(self, *, device_id: str | None = None, system_id: int | None = None,
               key_id: bytes | None = None, reason: str | None = None, now: int | None = None) -> None:
        """Add an entry to the file (used by the admin API, the CLI and tests)."""
        doc = self.document()
        if key_id is not None and key_id.hex() not in doc["key_ids"]:
            doc["key_ids"].append(key_id.hex())
        if device_id and device_id.lower() not in doc["devices"]:
            doc["devices"].append(device_id.lower())
        if system_id is not None and system_id not in doc["system_ids"]:
            doc["system_ids"].append(system_id)
        if reason is not None or now is not None:
            for key in _note_keys(device_id, system_id, key_id):
                doc["notes"][key] = {"reason": reason, "revoked_at": now}
        self._write(doc)

    def unrevoke(self, *, device_id: str | None = None, system_id: int | None = None,
                 key_id: bytes | None = None) -> bool:
        """Remove an entry; returns False (and writes nothing) if it was not in the file."""
        doc = self.document()
        removed = False
        for field, value in (("devices", device_id.lower() if device_id else None), ("system_ids", system_id),
                             ("key_ids", key_id.hex() if key_id is not None else None)):
            if value is not None and value in doc[field]:
                doc[field] = [v for v in doc[field] if v != value]
                removed = True
        if not removed:
            return False
        for key in _note_keys(device_id, system_id, key_id):
            doc["notes"].pop(key, None)
        self._write(doc)
        return True

    def document(self) -> dict:
        """The file's content with every list present (empty if the file does not exist)."""
        if self.path is None:
            raise ValueError("no revocation file configured")
        doc: dict = {}
        if self.path.exists():
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict):
                raise ValueError(f"{self.path.name} is not a JSON object")
        for field in ("devices", "system_ids", "key_ids"):
            if not isinstance(doc.setdefault(field, []), list):
                raise ValueError(f"{self.path.name}: {field!r} is not a list")
        if not isinstance(doc.setdefault("notes", {}), dict):
            raise ValueError(f"{self.path.name}: 'notes' is not an object")
        return doc

    def _write(self, doc: dict) -> None:
        """Atomically replace the file (temp file + ``os.replace``) and drop the cached list."""
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        os.replace(temp, self.path)
        self._stamp = None  # re-read on next use even if mtime and size look unchanged


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
    """Keyword arguments for :meth:`RevocationFile.revoke`/``unrevoke`` from an admin kind and value."""
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
