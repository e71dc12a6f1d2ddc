"""``keys/playready/``: the emulated PlayReady-style root and model certificates.

Written by ``license-server keys init`` (through :func:`init_playready_keys`)
and read by the keyring (through :func:`load_playready_keys`)::

    keys/playready/root.key.pem        emulated ECC P-256 root (private key: test only)
    keys/playready/root.cert.bin       its self-signed ISSUER BCert (SL3000; never part of a chain)
    keys/playready/license-server.key.pem    the emulated license server's P-256 key (the WMRM key role):
                                       challenges' EncryptedData keys are ElGamal-encrypted to it
    keys/playready/license-server-public.pem its public half, for third-party clients
    keys/playready/models.json         models: name, system id, security level, type
    keys/playready/models/NAME.key.pem / NAME.cert.bin   MODEL certificates, signed by the root (ISSUER BCerts)

There is one model per Widevine-style model (same name and system id; L1 ->
SL3000, L3 -> SL2000) plus ``emulated-test-sl150``, a test device model at
SL150. Certificates are BCerts (:mod:`license_server.protocols.playready.certificates`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from license_server import crypto
from license_server.core.model import SecurityLevel
from license_server.crypto import ecc
from license_server.protocols.playready import SL150, SL2000, SL3000
from license_server.protocols.playready.certificates import (
    CertificateError,
    CertType,
    KeyUsage,
    decode_certificate,
    issue,
    uncompressed,
)
from license_server.protocols.playready.trust import neutral_level

TEST_MODEL = {"name": "emulated-test-sl150", "system_id": 7901, "security_level": SL150, "device_type": "mobile"}
ROOT_NAME = "drm-license-emulator PlayReady-style root (PUBLIC TEST KEY)"
VALIDITY = 20 * 365 * 86400


@dataclass(frozen=True)
class PlayReadyModel:
    name: str
    system_id: int
    security_level: int  # 150 | 2000 | 3000
    device_type: str
    key_pem: bytes = field(repr=False)
    certificate: bytes = field(repr=False)

    @property
    def neutral_level(self) -> SecurityLevel:
        """SL3000 is hardware (L1); anything lower is software (L3) for the neutral policy."""
        return neutral_level(self.security_level)


@dataclass(frozen=True)
class PlayReadyKeys:
    root_key_pem: bytes = field(repr=False)
    root_certificate: bytes
    root_public_key: bytes
    models: dict[str, PlayReadyModel]
    server_key_pem: bytes = field(default=b"", repr=False)  # empty: keys/ predates the real challenge
    server_public_key: bytes = b""  # 65-byte point


def model_table(widevine_models: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """PlayReady models mirroring the Widevine-style ones, plus the SL150 test model."""
    table = [
        {"name": m["name"], "system_id": m["system_id"],
         "security_level": SL3000 if m["security_level"] == "L1" else SL2000, "device_type": m["device_type"]}
        for m in widevine_models
    ]
    return table + [dict(TEST_MODEL)]


def init_playready_keys(directory: Path, *, widevine_models: Sequence[Mapping[str, Any]], now: int) -> list[Path]:
    (directory / "models").mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(path: Path, data: bytes | str) -> None:
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        written.append(path)

    root_key = ecc.generate_ec_private_key()
    expiry = now + VALIDITY
    root = issue(cert_type=CertType.ISSUER, security_level=SL3000, cert_id=crypto.random_bytes(16),
                 keys=[(ecc.ec_public_point(root_key), (KeyUsage.ISSUER_ALL,))], model_name=ROOT_NAME, system_id=0,
                 issuer_key_pem=root_key, expiration=expiry)
    write(directory / "root.key.pem", root_key)
    write(directory / "root.cert.bin", root.encode())
    models = model_table(widevine_models)
    for model in models:
        key = ecc.generate_ec_private_key()
        cert = issue(cert_type=CertType.ISSUER, security_level=model["security_level"],
                     cert_id=crypto.random_bytes(16), keys=[(ecc.ec_public_point(key), (KeyUsage.ISSUER_DEVICE,))],
                     model_name=model["name"], system_id=model["system_id"], issuer_key_pem=root_key,
                     expiration=expiry)
        write(directory / "models" / f"{model['name']}.key.pem", key)
        write(directory / "models" / f"{model['name']}.cert.bin", cert.encode())
    write_server_key(directory, written)
    write(directory / "models.json", json.dumps({"models": models}, indent=2) + "\n")
    return written


def write_server_key(directory: Path, written: list[Path]) -> None:
    """The emulated license server key and its published public half."""
    key = ecc.generate_ec_private_key()
    for name, data in (("license-server.key.pem", key),
                       ("license-server-public.pem", ecc.public_key_pem(ecc.ec_public_point(key)))):
        (directory / name).write_bytes(data)
        written.append(directory / name)


def load_playready_keys(directory: Path) -> PlayReadyKeys | None:
    """The PlayReady key material, or None if ``keys/`` predates it."""
    if not (directory / "root.cert.bin").exists():
        return None
    root_certificate = (directory / "root.cert.bin").read_bytes()
    models = {}
    for entry in json.loads((directory / "models.json").read_text(encoding="utf-8"))["models"]:
        name = entry["name"]
        models[name] = PlayReadyModel(
            name=name, system_id=int(entry["system_id"]), security_level=int(entry["security_level"]),
            device_type=entry.get("device_type", "mobile"),
            key_pem=(directory / "models" / f"{name}.key.pem").read_bytes(),
            certificate=(directory / "models" / f"{name}.cert.bin").read_bytes(),
        )
    try:
        root_public_key = uncompressed(decode_certificate(root_certificate).keys[0][0])
    except CertificateError as exc:  # re-raised as ValueError for the keyring's message
        raise ValueError(f"playready/root.cert.bin does not parse: {exc}") from exc
    server_path, public_path = directory / "license-server.key.pem", directory / "license-server-public.pem"
    server_key = server_path.read_bytes() if server_path.exists() else b""
    server_public = ecc.ec_public_point(server_key) if server_key else b""
    if public_path.exists():  # a client-side keys/ may hold only the published half
        server_public = ecc.point_from_public_pem(public_path.read_bytes())
    return PlayReadyKeys(
        root_key_pem=(directory / "root.key.pem").read_bytes(), root_certificate=root_certificate,
        root_public_key=root_public_key, models=models, server_key_pem=server_key,
        server_public_key=server_public,
    )
