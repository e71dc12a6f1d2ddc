"""Keys the key service hands to packagers: derived from a key seed, recorded, licensable.

A key for (content id, track type, crypto period) is a pure function of the key
seed in ``keys/keyserver/seed.json`` (PUBLIC TEST SEED): every replica of the
server answers the same KID and key without a shared key database, the way the
PlayReady test server derives keys from its published key seed::

    info = u16(len(cid)) | cid | track | 0x00 | u32(period + 1, or 0 without rotation)
    kid  = HMAC-SHA256(seed, "kid" 0x00 | info)[:16]
    key  = HMAC-SHA256(seed, "key" 0x00 | info)[:16]

``cid`` is the canonical content id (:func:`content_id_text`) in UTF-8.

What was handed out is recorded in ``<data_dir>/key-derivations.jsonl`` (KIDs,
never keys: keys are derived again on lookup). :class:`DerivedCatalog` extends
the keyring's catalog with those titles, so every license dialect serves them
with the per-track policy of catalog titles. A content id that was never
fetched stays unknown, as before.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from license_server import crypto
from license_server.core.model import Track
from license_server.errors import DrmError, ErrorCode
from license_server.keyring import Catalog, Keyring, Title, TrackEntry

SEED_FILE = Path("keyserver") / "seed.json"
INDEX_FILE = "key-derivations.jsonl"
SEED_LABEL = b"drm-license-emulator PUBLIC TEST KEY SEED v1"
# Track types of the Widevine common-encryption API; UHD2 is licensed with the UHD1 policy (the strictest).
TRACK_TYPES = ("SD", "HD", "UHD1", "UHD2", "AUDIO")
POLICY_TRACK = {"SD": Track.SD, "HD": Track.HD, "UHD1": Track.UHD1, "UHD2": Track.UHD1, "AUDIO": Track.AUDIO}
MAX_CONTENT_ID_BYTES = 256


def content_id_text(raw: bytes) -> str:
    """The content id as the rights layer and the license dialects see it: the bytes as text
    when they are printable ASCII (``--content_id 7465737420...`` is ``"test..."``), else hex."""
    if raw and all(0x21 <= b <= 0x7E for b in raw) and b"/" not in raw:
        return raw.decode("ascii")
    return raw.hex()


def default_seed() -> bytes:
    """The shipped public test seed (what ``license-server keys init`` writes)."""
    return crypto.sha256(SEED_LABEL)[:32]


def load_seed(keys_dir: Path) -> bytes | None:
    """The key seed of ``keys/``, or None when the keys directory predates the key service."""
    path = keys_dir / SEED_FILE
    if not path.exists():
        return None
    seed = bytes.fromhex(json.loads(path.read_text(encoding="utf-8"))["seed"])
    if len(seed) < 16:
        raise ValueError(f"{path}: the key seed must be at least 16 bytes")
    return seed


def seed_document(seed: bytes) -> str:
    return json.dumps({"comment": "PUBLIC TEST KEY SEED: anyone can derive every key from it. Never for real content.",
                       "seed": seed.hex()}, indent=2) + "\n"


@dataclass(frozen=True)
class DerivedKey:
    content_id: str
    track: str  # SD | HD | UHD1 | UHD2 | AUDIO
    period: int | None  # crypto period index; None without key rotation
    kid: bytes
    key: bytes = field(repr=False)


def derive(seed: bytes, content_id: str, track: str, period: int | None = None) -> DerivedKey:
    """The KID and key of one (content id, track type, period)."""
    cid = content_id.encode("utf-8")
    info = (len(cid).to_bytes(2, "big") + cid + track.encode("ascii") + b"\x00"
            + (0 if period is None else period + 1).to_bytes(4, "big"))
    kid = crypto.hmac_sha256(seed, b"kid\x00" + info)[:16]
    key = crypto.hmac_sha256(seed, b"key\x00" + info)[:16]
    return DerivedKey(content_id, track, period, kid, key)


class DerivationIndex:
    """The append-only record of handed-out (content id, track, period, KID); reread when it changes,
    so replicas and worker processes sharing a data directory see each other's derivations."""

    def __init__(self, path: Path, seed: bytes) -> None:
        self.path = path
        self.seed = seed
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._by_kid: dict[bytes, tuple[str, str, int | None]] = {}
        self._by_content: dict[str, list[tuple[str, int | None]]] = {}

    def issue(self, content_id: str, wanted: Iterable[tuple[str, int | None]]) -> list[DerivedKey]:
        """Derive and record the keys of ``wanted`` (track, period) pairs of ``content_id``."""
        keys = [derive(self.seed, content_id, track, period) for track, period in wanted]
        with self._lock:
            self._refresh()
            fresh = {k.kid: k for k in keys if k.kid not in self._by_kid}
            lines = [json.dumps({"content_id": k.content_id, "track": k.track, "period": k.period, "kid": k.kid.hex()})
                     for k in fresh.values()]
            if lines:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    size = os.fstat(fd).st_size
                    torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"  # a crashed writer's partial line
                    os.write(fd, (("\n" if torn else "") + "\n".join(lines) + "\n").encode("utf-8"))
                finally:
                    os.close(fd)
                self._refresh()
        return keys

    def title(self, content_id: str) -> Title | None:
        with self._lock:
            self._refresh()
            entries = list(self._by_content.get(content_id, ()))
        if not entries:
            return None
        keys = [derive(self.seed, content_id, track, period) for track, period in entries]
        keys.sort(key=lambda k: (-1 if k.period is None else k.period, TRACK_TYPES.index(k.track)))
        return Title(content_id, content_id, tuple(TrackEntry(POLICY_TRACK[k.track], k.kid, k.key) for k in keys))

    def title_for_kid(self, kid: bytes) -> Title | None:
        with self._lock:
            self._refresh()
            found = self._by_kid.get(kid)
        return self.title(found[0]) if found else None

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return
        stamp = (stat.st_size, stat.st_mtime_ns)
        if stamp == self._stamp:
            return
        by_kid: dict[bytes, tuple[str, str, int | None]] = {}
        by_content: dict[str, list[tuple[str, int | None]]] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                kid, entry = bytes.fromhex(row["kid"]), (row["content_id"], row["track"], row["period"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line of a crashed writer: ignore it
            if kid not in by_kid and entry[1] in POLICY_TRACK:
                by_kid[kid] = entry
                by_content.setdefault(entry[0], []).append((entry[1], entry[2]))
        self._by_kid, self._by_content, self._stamp = by_kid, by_content, stamp


@dataclass(frozen=True)
class DerivedCatalog(Catalog):
    """The keyring's catalog, plus the titles packaged through the key service."""

    derivations: DerivationIndex | None = None

    def title(self, content_id: str) -> Title | None:
        found = self.titles.get(content_id)
        if found is None and self.derivations is not None:
            found = self.derivations.title(content_id)
        return found

    def title_for_kid(self, kid: bytes) -> Title | None:
        found = super().title_for_kid(kid)
        if found is None and self.derivations is not None:
            found = self.derivations.title_for_kid(kid)
        return found


def with_derived_titles(keyring: Keyring, data_dir: Path) -> Keyring:
    """The keyring whose catalog also resolves key-service titles recorded under ``data_dir``."""
    seed = load_seed(keyring.directory)
    if seed is None:
        return keyring
    index = DerivationIndex(data_dir / INDEX_FILE, seed)
    return replace(keyring, catalog=DerivedCatalog(keyring.catalog.titles, derivations=index))


def derivations_of(keyring: Keyring) -> DerivationIndex | None:
    """The derivation index behind ``keyring`` (None: no key seed in ``keys/``)."""
    catalog = keyring.catalog
    return catalog.derivations if isinstance(catalog, DerivedCatalog) else None


def issue_for_packager(keyring: Keyring, content_id: str, tracks: Iterable[str],
                       periods: Iterable[int | None]) -> list[DerivedKey]:
    """The keys a packager asked for, period by period (each period lists ``tracks`` in order), recorded."""
    index = derivations_of(keyring)
    if index is None:
        raise DrmError(ErrorCode.KEYSERVER_NOT_CONFIGURED)
    if not content_id or len(content_id.encode("utf-8")) > MAX_CONTENT_ID_BYTES:
        raise DrmError(ErrorCode.KEYSERVER_MALFORMED_REQUEST, f"a content id is 1 to {MAX_CONTENT_ID_BYTES} bytes")
    if content_id in keyring.catalog.titles:
        raise DrmError(ErrorCode.KEYSERVER_CONTENT_RESERVED, f"{content_id!r} is a catalog title")
    wanted = list(tracks)
    return index.issue(content_id, [(track, period) for period in periods for track in wanted])
