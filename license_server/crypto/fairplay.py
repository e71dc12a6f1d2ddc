"""Named crypto operations of the FairPlay-style exchange (hazmat stays in this package).

Public facts of FairPlay Streaming that we follow:

* SPC version 2: the SPC key (SPCK) is wrapped with RSA-OAEP (SHA-256, MGF1-SHA-256)
  to the 2048-bit key of the provider's application certificate; the certificate hash
  in the SPC header is SHA-1 of the certificate;
* the SPC and CKC payloads are AES-128-CBC *without* padding (TLLV blocks are already
  multiples of 16 bytes);
* the CKC payload key is the anti-replay key: AES-128-ECB of the 16-byte anti-replay
  seed under the first 16 bytes of SHA-1(R1);
* the content key travels AES-128-ECB encrypted under the session key SK.

Ours (the real derivations are Apple's secret and not public):

* DASk, the key of the ``[SK..R1]`` block: HMAC-SHA256(SPCK, label || R2)[:16];
* the CKC integrity key: HMAC-SHA256(SK, label || R1); the CKC integrity tag is
  HMAC-SHA256 over the CKC header and the plaintext TLLVs that precede it;
* the application certificate is a self-signed X.509 certificate (the real one is
  issued by Apple).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID

from license_server.crypto import RSA_KEY_BITS, CryptoError, _private_key, _public_key

_OAEP_SHA256 = asym_padding.OAEP(mgf=asym_padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
DASK_LABEL = b"drm-license-emulator fairplay DASk v1|"
CKC_MAC_LABEL = b"drm-license-emulator fairplay CKC integrity v1|"


# --------------------------------------------------------- application certificate

def issue_app_certificate(private_pem: bytes, *, common_name: str, not_before: int, not_after: int) -> bytes:
    """A self-signed X.509 (DER) application certificate for ``private_pem``'s RSA key."""
    key = _private_key(private_pem)
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "drm-license-emulator PUBLIC TEST KEYS"),
    ])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime.fromtimestamp(not_before, tz=datetime.UTC))
        .not_valid_after(datetime.datetime.fromtimestamp(not_after, tz=datetime.UTC))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def app_certificate_public_key(cert_der: bytes) -> bytes:
    """The PKCS#1 DER RSA-2048 public key of an application certificate, or CryptoError."""
    try:
        cert = x509.load_der_x509_certificate(cert_der)
        key = cert.public_key()
    except (ValueError, TypeError) as exc:
        raise CryptoError() from exc
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < RSA_KEY_BITS:
        raise CryptoError()
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def certificate_hash(cert_der: bytes) -> bytes:
    """SHA-1 of the application certificate, as carried in the SPC header."""
    return hashlib.sha1(cert_der).digest()


# --------------------------------------------------------------------- SPC key wrap

def wrap_spc_key(public_der: bytes, spc_key: bytes) -> bytes:
    """RSA-OAEP/SHA-256 wrap of the SPC key (SPC version 2, 256 bytes)."""
    return _public_key(public_der).encrypt(spc_key, _OAEP_SHA256)


def unwrap_spc_key(private_pem: bytes, wrapped: bytes) -> bytes:
    try:
        return _private_key(private_pem).decrypt(wrapped, _OAEP_SHA256)
    except ValueError as exc:
        raise CryptoError() from exc


# ------------------------------------------------------------------------ symmetric

def _check_block_key(key: bytes, data: bytes) -> None:
    if len(key) != 16 or len(data) % 16:
        raise CryptoError()


def cbc_encrypt_raw(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-128-CBC without padding; ``data`` must be a multiple of 16 bytes."""
    _check_block_key(key, data)
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def cbc_decrypt_raw(key: bytes, iv: bytes, data: bytes) -> bytes:
    _check_block_key(key, data)
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def ecb_encrypt(key: bytes, data: bytes) -> bytes:
    _check_block_key(key, data)
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def ecb_decrypt(key: bytes, data: bytes) -> bytes:
    _check_block_key(key, data)
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    return dec.update(data) + dec.finalize()


# ---------------------------------------------------------------------- derivations

def anti_replay_key(r1: bytes, seed: bytes) -> bytes:
    """The CKC payload key: AES-ECB(SHA-1(R1)[:16], anti-replay seed)."""
    return ecb_encrypt(hashlib.sha1(r1).digest()[:16], seed)


def derive_dask(spc_key: bytes, r2: bytes) -> bytes:
    """Our stand-in for DASk (the key of the [SK..R1] block)."""
    return hmac.new(spc_key, DASK_LABEL + r2, hashlib.sha256).digest()[:16]


def ckc_mac_key(session_key: bytes, r1: bytes) -> bytes:
    return hmac.new(session_key, CKC_MAC_LABEL + r1, hashlib.sha256).digest()
