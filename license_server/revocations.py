"""The revocation list: ``revocations.json`` in the data directory.

Format::

    {"devices": ["<device id hex>", ...], "system_ids": [7101, ...], "key_ids": ["<KID hex>", ...]}

``key_ids`` revokes content keys: licenses holding them are refused (KEY_REVOKED).

The file is re-read when it changes, so an operator (or a test) can revoke a
device without restarting the server.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from license_server.core.attestation import Revocations

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
               key_id: bytes | None = None) -> None:
        """Add an entry to the file (used by the CLI and tests)."""
        if self.path is None:
            raise ValueError("no revocation file configured")
        doc = {"devices": [], "system_ids": []}
        if self.path.exists():
            doc.update(json.loads(self.path.read_text(encoding="utf-8")))
        if key_id is not None and key_id.hex() not in doc.setdefault("key_ids", []):
            doc["key_ids"].append(key_id.hex())
        if device_id and device_id.lower() not in doc["devices"]:
            doc["devices"].append(device_id.lower())
        if system_id is not None and system_id not in doc["system_ids"]:
            doc["system_ids"].append(system_id)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
