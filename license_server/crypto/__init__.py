"""The crypto boundary: the only server package that touches ``cryptography.hazmat``.

Dialect-specific primitives live in submodules of this package (e.g. ECC for
the PlayReady-style dialect); nothing outside it imports hazmat.

Everything else calls the named operations below. Failed verification raises
:class:`CryptoError` with no detail for the client; callers turn it into a
stable error code. Algorithms follow the Widevine-style exchange:

* request signature: RSASSA-PSS with SHA-1, MGF1-SHA-1, salt length 20;
* session key and privacy key wrapping: RSA-OAEP with SHA-1;
* key derivation: AES-CMAC in counter mode with the labels ``ENCRYPTION`` and
  ``AUTHENTICATION`` over the serialized request;
* license and renewal signatures: HMAC-SHA256;
* key containers and the client id in privacy mode: AES-128-CBC, PKCS#7.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import cmac, hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

RSA_KEY_BITS = 2048
_PSS = asym_padding.PSS(mgf=asym_padding.MGF1(hashes.SHA1()), salt_length=20)
_OAEP = asym_padding.OAEP(mgf=asym_padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


class CryptoError(Exception):
    """A cryptographic check failed. Deliberately carries no detail."""


# --------------------------------------------------------------------- random

def random_bytes(n: int) -> bytes:
    return os.urandom(n)


# ------------------------------------------------------------------------ RSA

def generate_rsa_private_key() -> bytes:
    """A fresh RSA-2048 private key as PKCS#8 PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_der(private_pem: bytes) -> bytes:
    """The PKCS#1 DER public key of a PEM private key (the form certificates carry)."""
    return _private_key(private_pem).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )


def generate_rsa_signing_pair() -> tuple[bytes, bytes]:
    """A fresh RSA-2048 key as (PKCS#1 DER private key, SubjectPublicKeyInfo PEM public key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    private = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return private, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)


def private_key_pkcs1_der(private_pem: bytes) -> bytes:
    """The private key as PKCS#1 DER (``RSAPrivateKey``), the form device files of other tools hold."""
    return _private_key(private_pem).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


@lru_cache(maxsize=256)
def _private_key(private_pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CryptoError()
    return key


@lru_cache(maxsize=4096)
def _public_key(public_der: bytes) -> rsa.RSAPublicKey:
    """Load a PKCS#1 or SubjectPublicKeyInfo DER RSA key of at least 2048 bits."""
    try:
        key = serialization.load_der_public_key(public_der)
    except (ValueError, TypeError) as exc:
        raise CryptoError() from exc
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < RSA_KEY_BITS:
        raise CryptoError()
    return key


def rsa_pss_sign(private_pem: bytes, message: bytes) -> bytes:
    return _private_key(private_pem).sign(message, _PSS, hashes.SHA1())


def rsa_pss_verify(public_der: bytes, message: bytes, signature: bytes) -> None:
    """Raise :class:`CryptoError` unless ``signature`` is valid for ``message``."""
    try:
        _public_key(public_der).verify(signature, message, _PSS, hashes.SHA1())
    except (InvalidSignature, ValueError) as exc:
        raise CryptoError() from exc


def rsa_oaep_wrap(public_der: bytes, secret: bytes) -> bytes:
    return _public_key(public_der).encrypt(secret, _OAEP)


def rsa_oaep_unwrap(private_pem: bytes, wrapped: bytes) -> bytes:
    try:
        return _private_key(private_pem).decrypt(wrapped, _OAEP)
    except ValueError as exc:
        raise CryptoError() from exc


# ------------------------------------------------------------------ symmetric

def aes_cmac(key: bytes, data: bytes) -> bytes:
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def hmac_sha256_verify(key: bytes, data: bytes, tag: bytes) -> None:
    """Constant-time HMAC check; raises :class:`CryptoError` on mismatch."""
    if not hmac.compare_digest(hmac_sha256(key, data), tag):
        raise CryptoError()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def rsa_public_der_from_pem(public_pem: bytes) -> bytes:
    """The SubjectPublicKeyInfo DER of a PEM public key (raises :class:`CryptoError` if it is not one)."""
    try:
        key = serialization.load_pem_public_key(public_pem)
    except (ValueError, TypeError) as exc:
        raise CryptoError() from exc
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def aes_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def aes_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    if not ciphertext or len(ciphertext) % 16:
        raise CryptoError()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise CryptoError() from exc


def seal(key: bytes, plaintext: bytes, context: bytes) -> bytes:
    """AES-256-GCM seal (nonce || ciphertext) bound to ``context``."""
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, context)


def unseal(key: bytes, sealed: bytes, context: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:12], sealed[12:], context)
    except (InvalidTag, ValueError) as exc:
        raise CryptoError() from exc


# -------------------------------------------------------- Widevine derivation

@dataclass(frozen=True)
class SessionKeys:
    """Keys derived from one session key and the serialized license request."""

    encryption: bytes  # 16 bytes: decrypts key containers
    server_mac: bytes  # 32 bytes: server signs the license
    client_mac: bytes  # 32 bytes: device signs renewals and releases


def derive_session_keys(session_key: bytes, request_msg: bytes) -> SessionKeys:
    """AES-CMAC counter-mode derivation of the Widevine-style exchange."""
    enc_context = b"ENCRYPTION\x00" + request_msg + (128).to_bytes(4, "big")
    mac_context = b"AUTHENTICATION\x00" + request_msg + (512).to_bytes(4, "big")
    mac_blocks = [aes_cmac(session_key, bytes([i]) + mac_context) for i in (1, 2, 3, 4)]
    return SessionKeys(
        encryption=aes_cmac(session_key, b"\x01" + enc_context),
        server_mac=mac_blocks[0] + mac_blocks[1],
        client_mac=mac_blocks[2] + mac_blocks[3],
    )
