"""Loads ``keys/``: emulated roots, device models, the service identity, the catalog.

Layout (written by ``license-server keys init``)::

    keys/README.md                  says these keys are public test keys
    keys/catalog.json               titles, tracks, KIDs and content keys
    keys/rights.json                content-owner rights and business rules (see rights.py)
    keys/tokens/jwks.json           entitlement-token verification keys (signing-keys.jwks.json: test signer)
    keys/apps.json                  the genuine player app attestation accepts
    keys/widevine/root.key.pem      emulated root (private key: test only)
    keys/widevine/root.cert.bin     SignedDrmCertificate, self-signed
    keys/widevine/models.json       device models: system id, level, type
    keys/widevine/models/NAME.key.pem / NAME.cert.bin
    keys/widevine/service.key.pem / service.cert.bin
    keys/fairplay/app.key.pem / app.cert.der   FairPlay application certificate (optional)
    keys/playready/...              PlayReady-style ECC root and models (optional; see playready_keys.py)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from license_server.core.model import SecurityLevel, Track

if TYPE_CHECKING:  # imported lazily at run time (keeps the keyring free of import cycles)
    from license_server.playready_keys import PlayReadyKeys

KEYS_ENV = "DRM_EMULATOR_KEYS"


class KeyringError(Exception):
    """``keys/`` is missing or inconsistent; the message says how to fix it."""


def default_keys_dir() -> Path:
    """``$DRM_EMULATOR_KEYS``, else ``./keys`` if present, else the project's ``keys/``."""
    if os.environ.get(KEYS_ENV):
        return Path(os.environ[KEYS_ENV])
    local = Path("keys")
    if (local / "catalog.json").exists():
        return local
    return Path(__file__).resolve().parent.parent / "keys"


@dataclass(frozen=True)
class DeviceModel:
    name: str
    system_id: int
    security_level: SecurityLevel
    device_type: str  # mobile | tablet | laptop | tv | browser
    key_pem: bytes = field(repr=False)
    certificate: bytes = field(repr=False)


@dataclass(frozen=True)
class TrackEntry:
    track: Track
    kid: bytes
    key: bytes = field(repr=False)


@dataclass(frozen=True)
class Title:
    content_id: str
    name: str
    tracks: tuple[TrackEntry, ...]

    def track_for(self, kid: bytes) -> TrackEntry | None:
        return next((t for t in self.tracks if t.kid == kid), None)


@dataclass(frozen=True)
class Catalog:
    titles: dict[str, Title]

    def title(self, content_id: str) -> Title | None:
        return self.titles.get(content_id)

    def title_for_kid(self, kid: bytes) -> Title | None:
        return next((t for t in self.titles.values() if t.track_for(kid)), None)

    @classmethod
    def from_json(cls, data: dict) -> Catalog:
        titles = {}
        for content_id, entry in data["contents"].items():
            tracks = tuple(
                TrackEntry(Track(name), bytes.fromhex(t["kid"]), bytes.fromhex(t["key"]))
                for name, t in entry["tracks"].items()
            )
            titles[content_id] = Title(content_id, entry.get("title", content_id), tracks)
        return cls(titles)


@dataclass(frozen=True)
class Keyring:
    directory: Path
    root_key_pem: bytes = field(repr=False)
    root_certificate: bytes
    root_public_key: bytes
    models: dict[str, DeviceModel]
    service_key_pem: bytes = field(repr=False)
    service_certificate: bytes
    catalog: Catalog
    genuine_apps: tuple[tuple[str, bytes], ...] = ()
    fairplay_key_pem: bytes = field(default=b"", repr=False)  # empty: keys/ predates FairPlay
    fairplay_certificate: bytes = b""
    playready: PlayReadyKeys | None = None  # None: keys/ predates the PlayReady-style dialect

    def model_by_system_id(self, system_id: int) -> DeviceModel | None:
        return next((m for m in self.models.values() if m.system_id == system_id), None)

    def attestation_models(self) -> list[tuple[str, int, SecurityLevel]]:
        """Every device model any dialect's PKI certifies: (name, system id, neutral level).

        The Widevine-style models first; models only the PlayReady-style PKI knows
        (the SL150 test model) after them.
        """
        found = [(m.name, m.system_id, m.security_level) for m in self.models.values()]
        known = {system_id for _, system_id, _ in found}
        extra = self.playready.models.values() if self.playready else ()
        return found + [(m.name, m.system_id, m.neutral_level) for m in extra if m.system_id not in known]

    def default_model(self, level: SecurityLevel) -> DeviceModel:
        return next(m for m in self.models.values() if m.security_level is level)

    @property
    def rights_path(self) -> Path:
        return self.directory / "rights.json"

    @property
    def token_jwks_path(self) -> Path:
        return self.directory / "tokens" / "jwks.json"

    @property
    def token_signing_keys_path(self) -> Path:
        return self.directory / "tokens" / "signing-keys.jwks.json"

    @property
    def is_public_test_keyring(self) -> bool:
        marker = self.directory / "README.md"
        return marker.exists() and "PUBLIC TEST KEYS" in marker.read_text(encoding="utf-8")


def load_keyring(directory: Path | str | None = None) -> Keyring:
    """Read and cross-check ``keys/``; raise :class:`KeyringError` with a fix."""
    from license_server.playready_keys import load_playready_keys
    from license_server.protocols.widevine import license_protocol_pb2 as pb

    base = Path(directory) if directory else default_keys_dir()
    wv = base / "widevine"
    try:
        root_cert = (wv / "root.cert.bin").read_bytes()
        models_doc = json.loads((wv / "models.json").read_text(encoding="utf-8"))
        models = {}
        for entry in models_doc["models"]:
            name = entry["name"]
            models[name] = DeviceModel(
                name=name,
                system_id=int(entry["system_id"]),
                security_level=SecurityLevel(entry["security_level"]),
                device_type=entry.get("device_type", "mobile"),
                key_pem=(wv / "models" / f"{name}.key.pem").read_bytes(),
                certificate=(wv / "models" / f"{name}.cert.bin").read_bytes(),
            )
        catalog = Catalog.from_json(json.loads((base / "catalog.json").read_text(encoding="utf-8")))
        keyring = Keyring(
            directory=base,
            root_key_pem=(wv / "root.key.pem").read_bytes(),
            root_certificate=root_cert,
            root_public_key=pb.DrmCertificate.FromString(
                pb.SignedDrmCertificate.FromString(root_cert).drm_certificate
            ).public_key,
            models=models,
            service_key_pem=(wv / "service.key.pem").read_bytes(),
            service_certificate=(wv / "service.cert.bin").read_bytes(),
            catalog=catalog,
            fairplay_key_pem=_optional(base / "fairplay" / "app.key.pem"),
            fairplay_certificate=_optional(base / "fairplay" / "app.cert.der"),
            playready=load_playready_keys(base / "playready"),
            genuine_apps=tuple(
                (app["package"], bytes.fromhex(app["signing_digest"]))
                for app in json.loads((base / "apps.json").read_text(encoding="utf-8"))["apps"]
            ),
        )
    except FileNotFoundError as exc:
        raise KeyringError(
            f"keys directory {base} is incomplete ({exc.filename} missing); "
            f"run `license-server keys init --dir {base}`"
        ) from exc
    except (KeyError, ValueError, json.JSONDecodeError) as exc:
        raise KeyringError(f"keys directory {base} is inconsistent: {exc}") from exc
    return keyring


def _optional(path: Path) -> bytes:
    """Key material that older ``keys/`` directories do not have (empty if missing)."""
    return path.read_bytes() if path.exists() else b""
