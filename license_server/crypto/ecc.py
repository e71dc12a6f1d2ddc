"""ECC P-256 operations of the PlayReady-style dialect (hazmat stays in this package).

Named operations:

* :func:`generate_ec_private_key` — a fresh P-256 key as PKCS#8 PEM;
* :func:`ec_public_point` — its public key as the 65-byte uncompressed point
  (``04 || X || Y``), the form certificates and licenses carry;
* :func:`ecdsa_sign` / :func:`ecdsa_verify` — ECDSA with SHA-256; signatures are
  the raw 64-byte ``r || s`` concatenation (as PlayReady carries them), not DER;
* :func:`ecies_encrypt` / :func:`ecies_decrypt` — our key-encryption scheme for
  content keys: an ephemeral P-256 key agreement (ECDH) with the recipient's
  key, HKDF-SHA256 over the shared secret (info = label, caller context, both
  public points) to a 128-bit key-encryption key, then AES key wrap (RFC 3394)
  of the secret. Output: ``ephemeral point (65) || wrapped secret (len + 8)``.

Failures raise :class:`~license_server.crypto.CryptoError` without detail.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from license_server.crypto import CryptoError

POINT_BYTES = 65
SIGNATURE_BYTES = 64
ECIES_LABEL = b"drm-license-emulator ECIES P-256 HKDF-SHA256 AES-KW v1|"
_CURVE = ec.SECP256R1()


def generate_ec_private_key() -> bytes:
    """A fresh P-256 private key as PKCS#8 PEM."""
    key = ec.generate_private_key(_CURVE)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ec_public_point(private_pem: bytes) -> bytes:
    """The 65-byte uncompressed public point of a PEM private key."""
    return _point(_private_key(private_pem).public_key())


def _point(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


@lru_cache(maxsize=256)
def _private_key(private_pem: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(private_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CryptoError() from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != _CURVE.name:
        raise CryptoError()
    return key


@lru_cache(maxsize=4096)
def _public_key(point: bytes) -> ec.EllipticCurvePublicKey:
    if len(point) != POINT_BYTES or point[0] != 4:
        raise CryptoError()
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, point)
    except ValueError as exc:
        raise CryptoError() from exc


def is_valid_point(point: bytes) -> bool:
    """True if ``point`` is an uncompressed point on P-256."""
    try:
        _public_key(point)
    except CryptoError:
        return False
    return True


def ecdsa_sign(private_pem: bytes, message: bytes) -> bytes:
    """ECDSA-SHA256 over ``message``; the raw 64-byte ``r || s``."""
    der = _private_key(private_pem).sign(message, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def ecdsa_verify(point: bytes, message: bytes, signature: bytes) -> None:
    """Raise :class:`CryptoError` unless ``signature`` (raw ``r || s``) is valid."""
    if len(signature) != SIGNATURE_BYTES:
        raise CryptoError()
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    try:
        _public_key(point).verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError) as exc:
        raise CryptoError() from exc


def _kek(shared: bytes, context: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    info = ECIES_LABEL + len(context).to_bytes(2, "big") + context + ephemeral + recipient
    return HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=info).derive(shared)


def ecies_encrypt(recipient_point: bytes, secret: bytes, context: bytes) -> bytes:
    """Encrypt ``secret`` (a multiple of 8 bytes, at least 16) to a P-256 public key.

    ``context`` is bound into the key derivation: the same blob does not
    decrypt under another context (e.g. another license or key id).
    """
    if len(secret) < 16 or len(secret) % 8:
        raise ValueError("the secret must be a multiple of 8 bytes, at least 16")
    recipient = _public_key(recipient_point)
    ephemeral = ec.generate_private_key(_CURVE)
    ephemeral_point = _point(ephemeral.public_key())
    kek = _kek(ephemeral.exchange(ec.ECDH(), recipient), context, ephemeral_point, recipient_point)
    return ephemeral_point + aes_key_wrap(kek, secret)


def ecies_decrypt(private_pem: bytes, blob: bytes, context: bytes) -> bytes:
    """Inverse of :func:`ecies_encrypt`; :class:`CryptoError` if it is not ours to open."""
    if len(blob) < POINT_BYTES + 24:
        raise CryptoError()
    key = _private_key(private_pem)
    ephemeral_point, wrapped = blob[:POINT_BYTES], blob[POINT_BYTES:]
    shared = key.exchange(ec.ECDH(), _public_key(ephemeral_point))
    kek = _kek(shared, context, ephemeral_point, _point(key.public_key()))
    try:
        return aes_key_unwrap(kek, wrapped)
    except (InvalidUnwrap, ValueError) as exc:
        raise CryptoError() from exc


def private_scalar(private_pem: bytes) -> int:
    """The private value ``d`` of a P-256 PEM key (for ElGamal and key export)."""
    return _private_key(private_pem).private_numbers().private_value


def private_key_from_scalar(value: int) -> bytes:
    """A PKCS#8 PEM for the P-256 private value ``value`` (key import)."""
    key = ec.derive_private_key(value, _CURVE)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key_pem(point: bytes) -> bytes:
    """The SubjectPublicKeyInfo PEM of a 65-byte point (the published server key)."""
    return _public_key(point).public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def point_from_public_pem(pem: bytes) -> bytes:
    """The 65-byte point of a P-256 SubjectPublicKeyInfo PEM; :class:`CryptoError` otherwise."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise CryptoError() from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != _CURVE.name:
        raise CryptoError()
    return _point(key)
