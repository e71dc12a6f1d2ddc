"""An emulated device: identity, state flags, and its versioned on-disk format.

Layout of a device directory::

    device.json        this record (format_version 1)
    certificate.bin    SignedDrmCertificate chain: device <- model <- root; the leaf
                       carries the model's system_id, as real device certificates do
                       (devices made before that still work here, but cannot be exported)
    trust/root.bin     the emulated root the device trusts (service certificates)
    tee/               L1: sealed device key and hardware-unique key
    keystore/          L3: software keystore (plain PEM device key)
    licenses.db        the license store (persistent licenses, destruction records)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from device_emulator.errors import DeviceError
from device_emulator.tee import EmulatedTee, SoftwareKeystore
from license_server import crypto
from license_server.clock import Clock, SystemClock
from license_server.core.model import Hdcp, SecurityLevel
from license_server.keygen import GENUINE_APP_PACKAGE, GENUINE_APP_SIGNING_DIGEST
from license_server.keyring import DeviceModel, Keyring
from license_server.protocols.widevine import license_protocol_pb2 as pb
from license_server.protocols.widevine.certificates import CertType, issue_certificate

FORMAT_VERSION = 1
TAMPERED_APP_DIGEST = hashlib.sha256(b"repackaged player app, re-signed by someone else").hexdigest()
DEFAULT_PATCH_LEVEL = 20261101


@dataclass
class DeviceFlags:
    rooted: bool = False
    bootloader_unlocked: bool = False
    tampered_app: bool = False


@dataclass
class DeviceRecord:
    format_version: int
    device_id: str
    level: str
    model: str
    system_id: int
    device_type: str
    max_hdcp: int
    flags: DeviceFlags
    app_package: str
    app_signing_digest: str
    os_patch_level: int
    created_at: int
    clock_offset: int = 0
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: dict) -> DeviceRecord:
        if doc.get("format_version") != FORMAT_VERSION:
            raise DeviceError(f"device format {doc.get('format_version')} is not supported (expected {FORMAT_VERSION})")
        doc = dict(doc)
        doc["flags"] = DeviceFlags(**doc.get("flags", {}))
        return cls(**doc)


class Device:
    """A provisioned device, loaded from its directory."""

    def __init__(self, directory: Path, record: DeviceRecord, clock: Clock) -> None:
        self.directory = directory
        self.record = record
        self.clock = clock
        tee_cls = EmulatedTee if self.level is SecurityLevel.L1 else SoftwareKeystore
        self.tee = tee_cls.open(self._key_dir)

    # ----------------------------------------------------------- lifecycle

    @classmethod
    def create(cls, directory: Path, keyring: Keyring, *, model: DeviceModel, flags: DeviceFlags,
               max_hdcp: Hdcp, clock: Clock | None = None) -> Device:
        clock = clock or SystemClock()
        if (directory / "device.json").exists():
            raise DeviceError(f"{directory} already holds a device")
        directory.mkdir(parents=True, exist_ok=True)
        key_dir = directory / ("tee" if model.security_level is SecurityLevel.L1 else "keystore")
        holder = (EmulatedTee if model.security_level is SecurityLevel.L1 else SoftwareKeystore).provision(key_dir)
        serial = crypto.random_bytes(16)
        model_cert = pb.SignedDrmCertificate.FromString(model.certificate)
        cert = issue_certificate(
            cert_type=CertType.DEVICE, public_key=holder.public_key, serial_number=serial,
            issuer_key_pem=model.key_pem, issuer=model_cert, system_id=model.system_id, created=clock.now(),
        )
        (directory / "certificate.bin").write_bytes(cert.SerializeToString())
        (directory / "trust").mkdir(exist_ok=True)
        (directory / "trust" / "root.bin").write_bytes(keyring.root_certificate)
        record = DeviceRecord(
            format_version=FORMAT_VERSION,
            device_id=serial.hex(),
            level=model.security_level.value,
            model=model.name,
            system_id=model.system_id,
            device_type=model.device_type,
            max_hdcp=int(max_hdcp),
            flags=flags,
            app_package=GENUINE_APP_PACKAGE,
            app_signing_digest=TAMPERED_APP_DIGEST if flags.tampered_app else GENUINE_APP_SIGNING_DIGEST,
            os_patch_level=DEFAULT_PATCH_LEVEL,
            created_at=clock.now(),
        )
        device = cls(directory, record, clock)
        device.save()
        return device

    @classmethod
    def load(cls, directory: Path, clock: Clock | None = None) -> Device:
        path = directory / "device.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DeviceError(f"no device in {directory} (create one with `device-emulator create`)") from exc
        except ValueError as exc:
            raise DeviceError(f"{path} is not valid JSON") from exc
        try:
            return cls(directory, DeviceRecord.from_json(doc), clock or SystemClock())
        except (TypeError, FileNotFoundError) as exc:
            raise DeviceError(f"{directory} is not a complete device: {exc}") from exc

    def save(self) -> None:
        path = self.directory / "device.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.record), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    # ----------------------------------------------------------- properties

    @property
    def _key_dir(self) -> Path:
        return self.directory / ("tee" if self.level is SecurityLevel.L1 else "keystore")

    @property
    def level(self) -> SecurityLevel:
        return SecurityLevel(self.record.level)

    @property
    def device_id(self) -> str:
        return self.record.device_id

    @property
    def certificate_chain(self) -> bytes:
        return (self.directory / "certificate.bin").read_bytes()

    @property
    def trusted_root(self) -> bytes:
        return (self.directory / "trust" / "root.bin").read_bytes()

    @property
    def license_db_path(self) -> Path:
        return self.directory / "licenses.db"

    def now(self) -> int:
        """The device clock: the injected clock plus the persisted test offset."""
        return self.clock.now() + self.record.clock_offset

    def summary(self) -> dict:
        r = self.record
        return {
            "device_id": r.device_id, "level": r.level, "model": r.model, "system_id": r.system_id,
            "device_type": r.device_type, "max_hdcp": Hdcp(r.max_hdcp).name, "flags": asdict(r.flags),
            "app_package": r.app_package, "hardware_backed_keys": self.tee.hardware_backed,
            "directory": str(self.directory),
        }
