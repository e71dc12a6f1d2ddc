"""The device's PlayReady identity: separate ECC P-256 signing and encryption keys
and a BCert chain, provisioned lazily on first use into ``DEVICE_DIR/playready/``::

    playready/certificate.bin    BCert chain DEVICE <- model ISSUER (signed by the emulated root)
    playready/device_key.sealed  L1: both private keys (signing PEM, then encryption PEM) sealed
                                 under tee/hardware_unique_key.bin
    playready/device_key.pem     L3: both private keys as plain PEM (software keystore)

The device certificate reuses the device's serial number (so a revocation of
the device id covers both dialects) and takes the model's security level. The
model is the device's own (same name in keys/playready/models.json) unless
``device.json`` ``extra.playready_model`` names another one, e.g.
``emulated-test-sl150`` for a test device.

:class:`EccKeyHolder` plays the TEE's role for this dialect: the private key
and the content keys stay inside it; on L1 nothing can export them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from device_emulator.device import Device
from device_emulator.tee import KeyInfo, TeeError
from license_server import crypto
from license_server.core.model import SecurityLevel
from license_server.crypto import cenc, ecc, elgamal
from license_server.keyring import Keyring, load_keyring
from license_server.protocols.playready import soap, xmr
from license_server.protocols.playready.certificates import (
    CHAIN_MAGIC,
    DEVICE_FEATURES,
    CertType,
    KeyUsage,
    decode_certificate,
    decode_chain,
    encode_chain,
    issue,
)

SEAL_CONTEXT = b"drm-license-emulator tee playready device keys v2"
MODEL_OVERRIDE = "playready_model"


@dataclass
class _Session:
    integrity_key: bytes = field(repr=False)
    keys: dict[bytes, bytes] = field(repr=False)
    info: tuple[KeyInfo, ...]


class EccKeyHolder:
    """Holds the device's ECC key; opens licenses; keeps their content keys."""

    def __init__(self, signing_pem: bytes, encryption_pem: bytes, *, hardware_backed: bool) -> None:
        self.__signing_pem = signing_pem
        self.__encryption = ecc.private_scalar(encryption_pem)
        self.__encryption_pem = encryption_pem
        self.public_key = ecc.ec_public_point(signing_pem)
        self.encryption_key = ecc.ec_public_point(encryption_pem)
        self.hardware_backed = hardware_backed
        self.__sessions: dict[int, _Session] = {}
        self.__ids = itertools.count(1)

    def sign(self, payload: bytes) -> bytes:
        return ecc.ecdsa_sign(self.__signing_pem, payload)

    def export_private_keys(self) -> tuple[bytes, bytes]:
        """(signing PEM, encryption PEM): for ``device-emulator export`` only; the caller warns on L1."""
        return self.__signing_pem, self.__encryption_pem

    def load(self, parsed: list[xmr.ParsedLicense]) -> int:
        """Check the binding, decrypt every key, verify each CMAC signature; return a handle.

        ``LICENSE_NOT_BOUND``: the license is for another device key.
        ``LICENSE_TAMPERED``: a key or a signature does not verify.
        """
        first, keys, info = b"", {}, []
        for one in parsed:
            lic = one.license
            if not crypto.constant_time_equal(lic.device_key, self.encryption_key[1:]):
                raise TeeError("LICENSE_NOT_BOUND", "the license is bound to another device")
            for key in lic.keys:
                try:
                    secret = elgamal.decrypt(self.__encryption, key.encrypted_key)[:32]
                except crypto.CryptoError as exc:
                    raise TeeError("LICENSE_NOT_BOUND", f"key {key.kid.hex()} is not encrypted to this device") from exc
                if not xmr.verify_signature(one, secret[:16]):
                    raise TeeError("LICENSE_TAMPERED", "the license signature does not verify")
                first = first or secret[:16]
                keys[key.kid] = secret[16:]
                info.append(KeyInfo(key.kid, key.track, key.robustness, key.hdcp))
        if not first:
            raise TeeError("LICENSE_TAMPERED", "the license holds no content key")
        handle = next(self.__ids)
        self.__sessions[handle] = _Session(first, keys, tuple(info))
        return handle

    def verify_nonce_binding(self, handle: int, license_nonce: bytes, license_bytes: bytes, binding: bytes) -> bool:
        expected = soap.nonce_binding(self._session(handle).integrity_key, license_nonce, license_bytes)
        return crypto.constant_time_equal(expected, binding)

    def key_info(self, handle: int) -> tuple[KeyInfo, ...]:
        return self._session(handle).info

    def decrypt_samples(self, handle: int, kid: bytes, samples: Sequence[cenc.ProtectedSample]) -> list[bytes]:
        """Decrypt Common Encryption samples with a loaded content key, in here (as ``tee.decrypt_samples``)."""
        try:
            key = self._session(handle).keys[kid]
        except KeyError as exc:
            raise TeeError("KEY_NOT_LOADED", f"key {kid.hex()} is not loaded") from exc
        try:
            return [cenc.decrypt_sample(key, sample) for sample in samples]
        except cenc.CencError as exc:
            raise TeeError("DECRYPT_FAILED", str(exc)) from exc

    def export_content_keys(self, handle: int) -> dict[bytes, bytes]:
        """L3 only: software keys are reachable by the app."""
        if self.hardware_backed:
            raise TeeError("KEYS_NOT_EXPORTABLE", "L1 content keys never leave the TEE")
        return dict(self._session(handle).keys)

    def close(self, handle: int) -> None:
        self.__sessions.pop(handle, None)

    def _session(self, handle: int) -> _Session:
        try:
            return self.__sessions[handle]
        except KeyError as exc:
            raise TeeError("SESSION_CLOSED", "the license session is closed") from exc


@dataclass(frozen=True)
class Identity:
    chain: bytes
    security_level: int
    model: str
    holder: EccKeyHolder


def _directory(device: Device) -> Path:
    return device.directory / "playready"


def _huk(device: Device) -> bytes:
    return (device.directory / "tee" / "hardware_unique_key.bin").read_bytes()


def _split_pems(data: bytes) -> tuple[bytes, bytes]:
    marker = b"-----END PRIVATE KEY-----\n"
    first, _, second = data.partition(marker)
    return first + marker, second


def open_identity(device: Device, keyring: Keyring | None = None) -> Identity:
    """Load the device's PlayReady identity, provisioning it on first use."""
    directory = _directory(device)
    path = directory / "certificate.bin"
    if not path.exists() or path.read_bytes()[:4] != CHAIN_MAGIC:  # absent, or the pre-BCert format
        _provision(device, keyring or load_keyring())
    chain = path.read_bytes()
    leaf, model = decode_chain(chain)[:2]
    if device.level is SecurityLevel.L1:
        try:
            keys = crypto.unseal(_huk(device), (directory / "device_key.sealed").read_bytes(), SEAL_CONTEXT)
        except crypto.CryptoError as exc:
            raise TeeError("TEE_CORRUPT", "the sealed PlayReady device keys do not unseal") from exc
    else:
        keys = (directory / "device_key.pem").read_bytes()
    holder = EccKeyHolder(*_split_pems(keys), hardware_backed=device.level is SecurityLevel.L1)
    return Identity(chain, leaf.security_level, model.model_name, holder)


def _provision(device: Device, keyring: Keyring) -> None:
    if keyring.playready is None:
        raise TeeError("NOT_PROVISIONABLE", "keys/ has no playready/ material; run `license-server keys init --force`")
    name = device.record.extra.get(MODEL_OVERRIDE, device.record.model)
    model = keyring.playready.models.get(name)
    if model is None:
        raise TeeError("NOT_PROVISIONABLE", f"no PlayReady model {name!r} in keys/playready/models.json")
    signing, encryption = ecc.generate_ec_private_key(), ecc.generate_ec_private_key()
    cert = issue(cert_type=CertType.DEVICE, security_level=model.security_level,
                 cert_id=bytes.fromhex(device.device_id),
                 keys=[(ecc.ec_public_point(signing), (KeyUsage.SIGN,)),
                       (ecc.ec_public_point(encryption), (KeyUsage.ENCRYPT_KEY,))],
                 model_name=model.name, system_id=model.system_id, issuer_key_pem=model.key_pem,
                 features=DEVICE_FEATURES)
    chain = encode_chain([cert, decode_certificate(model.certificate)])
    directory = _directory(device)
    directory.mkdir(parents=True, exist_ok=True)
    keys = signing + encryption
    if device.level is SecurityLevel.L1:
        (directory / "device_key.sealed").write_bytes(crypto.seal(_huk(device), keys, SEAL_CONTEXT))
    else:
        (directory / "device_key.pem").write_bytes(keys)
    (directory / "certificate.bin").write_bytes(chain)
