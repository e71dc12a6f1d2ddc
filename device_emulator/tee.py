"""The emulated trusted execution environment (L1) and software keystore (L3).

Both expose the same operations; the app layer never gets the device private
key. The difference is where secrets live and who can reach them:

* :class:`EmulatedTee` (L1) seals the device key under a per-device hardware
  key and keeps content keys inside the object: there is no way to export them.
  Its attestation fields come from the "hardware" and tell the truth.
* :class:`SoftwareKeystore` (L3) keeps the device key as a plain PEM file and
  lets the app read content keys (``export_content_keys``), as a software CDM
  would. Its attestation is a software claim.

Crypto goes through :mod:`license_server.crypto`, the one crypto boundary.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from device_emulator.errors import TeeError
from license_server import crypto
from license_server.core.model import Hdcp, Robustness
from license_server.crypto import cenc
from license_server.protocols.fairplay.fields import HdcpType
from license_server.protocols.widevine import license_protocol_pb2 as pb

SEAL_CONTEXT = b"drm-license-emulator tee device key v1"


# A FairPlay-style key's level and HDCP type in the neutral enums: a "main" key needs
# hardware robustness; HDCP type 0 is any HDCP, type 1 is HDCP 2.2 or higher.
_FAIRPLAY_ROBUSTNESS = {True: Robustness.HW_SECURE_ALL, False: Robustness.SW_SECURE_CRYPTO}
_FAIRPLAY_HDCP = {HdcpType.NONE: Hdcp.NONE, HdcpType.TYPE0: Hdcp.V1, HdcpType.TYPE1: Hdcp.V2_2}


@dataclass(frozen=True)
class KeyInfo:
    """What the app may know about a loaded key: never its value (on L1)."""

    kid: bytes
    track: str
    robustness: int
    hdcp: int


@dataclass
class _Session:
    client_mac: bytes = field(repr=False)
    server_mac: bytes = field(repr=False)
    keys: dict[bytes, bytes] = field(repr=False, default_factory=dict)
    info: tuple[KeyInfo, ...] = ()


class _KeyHolder:
    """Operations common to both implementations."""

    hardware_backed = False

    def __init__(self, key_pem: bytes) -> None:
        self.__key_pem = key_pem
        self.public_key = crypto.public_key_der(key_pem)
        self.__sessions: dict[int, _Session] = {}
        self.__ids = itertools.count(1)

    def sign(self, payload: bytes) -> bytes:
        """RSA-PSS signature of a license request with the device key."""
        return crypto.rsa_pss_sign(self.__key_pem, payload)

    def export_device_key(self) -> bytes:
        """The device private key (PKCS#1 DER) for a device file another CDM loads (``device-emulator export``).

        The one way the key leaves: on L1 it takes the key out of the emulated TEE, and the caller
        must say so to the user (the export command warns).
        """
        return crypto.private_key_pkcs1_der(self.__key_pem)

    def load_license(self, request_msg: bytes, wrapped_session_key: bytes, license_msg: bytes,
                     signature: bytes) -> tuple[int, pb.License]:
        """Unwrap, verify and load a license; return a session handle and the license.

        Raises ``LICENSE_NOT_BOUND`` if it was wrapped to another device and
        ``LICENSE_TAMPERED`` if its signature does not verify.
        """
        try:
            session_key = crypto.rsa_oaep_unwrap(self.__key_pem, wrapped_session_key)
        except crypto.CryptoError as exc:
            raise TeeError("LICENSE_NOT_BOUND", "the license is bound to another device") from exc
        keys = crypto.derive_session_keys(session_key, request_msg)
        try:
            crypto.hmac_sha256_verify(keys.server_mac, license_msg, signature)
        except crypto.CryptoError as exc:
            raise TeeError("LICENSE_TAMPERED", "the license signature does not verify") from exc
        lic = pb.License.FromString(license_msg)
        session = _Session(client_mac=keys.client_mac, server_mac=keys.server_mac)
        info = []
        for container in lic.key:
            if container.type != pb.License.KeyContainer.CONTENT:
                continue
            try:
                session.keys[container.id] = crypto.aes_cbc_decrypt(keys.encryption, container.iv, container.key)
            except crypto.CryptoError as exc:
                raise TeeError("LICENSE_TAMPERED", "a key container does not decrypt") from exc
            info.append(KeyInfo(container.id, container.track_label, container.level,
                                container.required_protection.hdcp))
        session.info = tuple(info)
        handle = next(self.__ids)
        self.__sessions[handle] = session
        return handle, lic

    def apply_renewal(self, handle: int, license_msg: bytes, signature: bytes) -> pb.License:
        """Verify a renewal license with the original session's server MAC key."""
        session = self._session(handle)
        try:
            crypto.hmac_sha256_verify(session.server_mac, license_msg, signature)
        except crypto.CryptoError as exc:
            raise TeeError("LICENSE_TAMPERED", "the renewal signature does not verify") from exc
        return pb.License.FromString(license_msg)

    def sign_with_client_mac(self, handle: int, payload: bytes) -> bytes:
        """HMAC-SHA256 with the session's client MAC key (renewal, release)."""
        return crypto.hmac_sha256(self._session(handle).client_mac, payload)

    def decrypt_samples(self, handle: int, kid: bytes, samples: Sequence[cenc.ProtectedSample]) -> list[bytes]:
        """Decrypt Common Encryption samples with a loaded content key, in here.

        The key is used where it lives (on L1, inside the TEE) and never
        returned; only clear sample bytes come out, as a secure decoder path
        would hand frames on. Raises ``KEY_NOT_LOADED`` for a kid the session
        does not hold and ``DECRYPT_FAILED`` for inconsistent sample data.
        """
        key = self._content_key(handle, kid)
        try:
            return [cenc.decrypt_sample(key, sample) for sample in samples]
        except cenc.CencError as exc:
            raise TeeError("DECRYPT_FAILED", str(exc)) from exc

    def seal_server_mac(self, handle: int) -> bytes:
        """An opaque blob that lets this device later verify the server's release acknowledgement.

        It holds only the server MAC key (no content key); on L1 it is sealed to the TEE.
        """
        return self._seal(self._session(handle).server_mac)

    def verify_sealed_mac(self, blob: bytes, message: bytes, signature: bytes) -> bool:
        """Check an HMAC-SHA256 signature with a key sealed by :meth:`seal_server_mac`."""
        try:
            crypto.hmac_sha256_verify(self._unseal(blob), message, signature)
        except crypto.CryptoError:
            return False
        return True

    def _seal(self, secret: bytes) -> bytes:
        return secret  # software keystore: no hardware to seal to

    def _unseal(self, blob: bytes) -> bytes:
        return blob

    def key_info(self, handle: int) -> tuple[KeyInfo, ...]:
        return self._session(handle).info

    def close(self, handle: int) -> None:
        """Destroy a session's keys."""
        self.__sessions.pop(handle, None)

    def _content_key(self, handle: int, kid: bytes) -> bytes:
        try:
            return self._session(handle).keys[kid]
        except KeyError as exc:
            raise TeeError("KEY_NOT_LOADED", f"key {kid.hex()} is not loaded") from exc

    def _session(self, handle: int) -> _Session:
        try:
            return self.__sessions[handle]
        except KeyError as exc:
            raise TeeError("SESSION_CLOSED", "the license session is closed") from exc

    # ------------------------------------------------ FairPlay-style sessions (additive)
    # SPCK, SK and R1 are created here and never leave; the app gets the SPC bytes
    # and, after a CKC, key infos (values only via export_content_keys on L3).

    def fairplay_build_spc(self, *, app_certificate: bytes, app_public_key: bytes, r2: bytes, hu: bytes,
                           blocks: Sequence[tuple[int, bytes]]) -> tuple[int, bytes]:
        """Add ``[SK..R1]`` and its integrity to ``blocks``, sign and encrypt them into an SPC."""
        from license_server.crypto import fairplay as fpcrypto
        from license_server.protocols.fairplay import spc as fp_spc
        from license_server.protocols.fairplay.tllv import Tag

        spc_key, iv, sk = crypto.random_bytes(16), crypto.random_bytes(16), crypto.random_bytes(16)
        r1, integrity = crypto.random_bytes(44), crypto.random_bytes(16)
        seed = dict(blocks).get(Tag.ANTI_REPLAY_SEED, b"")
        session_block = fp_spc.seal_session_block(fpcrypto.derive_dask(spc_key, r2), crypto.random_bytes(16),
                                                  sk, hu, r1, integrity)
        body = fp_spc.build_spc(
            app_certificate=app_certificate, app_public_key=app_public_key, sign=self.sign, spc_key=spc_key, iv=iv,
            blocks=[(Tag.SESSION_KEY_R1, session_block), (Tag.SESSION_KEY_R1_INTEGRITY, integrity), *blocks],
        )
        ref = next(self.__ids)
        self._fairplay_pending()[ref] = fp_spc.SessionSecrets(sk, hu, r1, seed)
        return ref, body

    def fairplay_load_ckc(self, ref: int, ckc_body: bytes):
        """Verify and open the CKC answering SPC ``ref``; keys stay here. Returns (handle, contents)."""
        secrets = self._fairplay_pending().get(ref)
        if secrets is None:
            raise TeeError("SESSION_CLOSED", "no pending FairPlay session for this SPC")
        return self._fairplay_open(secrets, ckc_body)

    def fairplay_persist(self, ref: int) -> bytes:
        """The session secrets wrapped to this device's key (stored with an offline key)."""
        s = self._fairplay_pending()[ref]
        return crypto.rsa_oaep_wrap(self.public_key, s.sk + s.hu + s.r1 + s.seed)

    def fairplay_load_stored(self, wrapped: bytes, ckc_body: bytes):
        """Load a stored offline key; it only unwraps on the device it was issued to."""
        from license_server.protocols.fairplay import spc as fp_spc

        try:
            plain = crypto.rsa_oaep_unwrap(self.__key_pem, wrapped)
        except crypto.CryptoError as exc:
            raise TeeError("LICENSE_NOT_BOUND", "the offline key is bound to another device") from exc
        return self._fairplay_open(fp_spc.SessionSecrets(plain[:16], plain[16:36], plain[36:80], plain[80:96]),
                                   ckc_body)

    def fairplay_forget(self, ref: int) -> None:
        self._fairplay_pending().pop(ref, None)

    def _fairplay_pending(self) -> dict:
        try:
            return self.__fairplay
        except AttributeError:
            self.__fairplay: dict = {}
            return self.__fairplay

    def _fairplay_open(self, secrets, ckc_body: bytes):
        import dataclasses

        from license_server.errors import DrmError
        from license_server.protocols.fairplay import ckc as fp_ckc
        from license_server.protocols.fairplay.fields import SecurityLevel

        try:
            contents = fp_ckc.open_ckc(ckc_body, secrets)
        except fp_ckc.CkcIntegrityError as exc:
            raise TeeError("LICENSE_TAMPERED", str(exc)) from exc
        except (DrmError, crypto.CryptoError) as exc:
            raise TeeError("LICENSE_TAMPERED", "the CKC does not parse for this session") from exc
        session = _Session(client_mac=b"", server_mac=b"", keys=dict(contents.key_values))
        session.info = tuple(
            KeyInfo(e.kid, e.track.value, _FAIRPLAY_ROBUSTNESS[e.security_level is SecurityLevel.MAIN],
                    _FAIRPLAY_HDCP[e.hdcp])
            for e in contents.entries
        )
        handle = next(self.__ids)
        self.__sessions[handle] = session
        return handle, dataclasses.replace(contents, key_values={})


class EmulatedTee(_KeyHolder):
    """L1: device key sealed under a hardware-unique key; content keys never leave."""

    hardware_backed = True

    def __init__(self, key_pem: bytes, hardware_unique_key: bytes) -> None:
        super().__init__(key_pem)
        self.__huk = hardware_unique_key

    def _seal(self, secret: bytes) -> bytes:
        return crypto.seal(self.__huk, secret, SEAL_CONTEXT + b"|blob")

    def _unseal(self, blob: bytes) -> bytes:
        return crypto.unseal(self.__huk, blob, SEAL_CONTEXT + b"|blob")

    @classmethod
    def provision(cls, directory: Path) -> EmulatedTee:
        directory.mkdir(parents=True, exist_ok=True)
        huk = crypto.random_bytes(32)
        key_pem = crypto.generate_rsa_private_key()
        (directory / "hardware_unique_key.bin").write_bytes(huk)
        (directory / "device_key.sealed").write_bytes(crypto.seal(huk, key_pem, SEAL_CONTEXT))
        return cls(key_pem, huk)

    @classmethod
    def open(cls, directory: Path) -> EmulatedTee:
        huk = (directory / "hardware_unique_key.bin").read_bytes()
        try:
            key_pem = crypto.unseal(huk, (directory / "device_key.sealed").read_bytes(), SEAL_CONTEXT)
        except crypto.CryptoError as exc:
            raise TeeError("TEE_CORRUPT", "the sealed device key does not unseal") from exc
        return cls(key_pem, huk)


class SoftwareKeystore(_KeyHolder):
    """L3: a software keystore; the app can read the keys it holds."""

    @classmethod
    def provision(cls, directory: Path) -> SoftwareKeystore:
        directory.mkdir(parents=True, exist_ok=True)
        key_pem = crypto.generate_rsa_private_key()
        (directory / "device_key.pem").write_bytes(key_pem)
        return cls(key_pem)

    @classmethod
    def open(cls, directory: Path) -> SoftwareKeystore:
        return cls((directory / "device_key.pem").read_bytes())

    def export_content_keys(self, handle: int) -> dict[bytes, bytes]:
        """Software keys are reachable by the app: the L3 weakness, on purpose."""
        return {info.kid: self._content_key(handle, info.kid) for info in self.key_info(handle)}
