"""Helpers for the key-service tests: sign Widevine CENC key requests as Shaka Packager does."""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.conftest import KEYS

AES_KEY = bytes.fromhex("1ae8ccd0e7985cc0b6203a55855a1034afc252980e970ca90e5202689f947ab9")
AES_IV = bytes.fromhex("d58ce954203b7c9a9a9d467f59839249")
RSA_KEY_PATH = KEYS / "packagers" / "rsa_test.key.der"
ALL_TRACKS = ["SD", "HD", "UHD1", "UHD2", "AUDIO"]


def aes_signature(message: bytes, key: bytes = AES_KEY, iv: bytes = AES_IV) -> bytes:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(hashlib.sha1(message).digest()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def rsa_signature(message: bytes) -> bytes:
    key = serialization.load_der_private_key(RSA_KEY_PATH.read_bytes(), password=None)
    return key.sign(message, asym_padding.PSS(asym_padding.MGF1(hashes.SHA1()), 20), hashes.SHA1())  # type: ignore[union-attr]


def cenc_request(content_id: bytes, tracks=ALL_TRACKS, **extra) -> bytes:
    doc = {"content_id": base64.b64encode(content_id).decode(), "policy": "",
           "tracks": [{"type": t} for t in tracks], "drm_types": ["WIDEVINE"], **extra}
    return json.dumps(doc).encode()


def signed_body(request: bytes, signer: str = "widevine_test", signature: bytes | None = None,
                method: str = "aes") -> bytes:
    if signature is None:
        signature = aes_signature(request) if method == "aes" else rsa_signature(request)
    return json.dumps({"request": base64.b64encode(request).decode(),
                       "signature": base64.b64encode(signature).decode(), "signer": signer}).encode()


def decode_response(raw: bytes) -> dict:
    doc = json.loads(raw)
    return json.loads(base64.b64decode(doc["response"])) | ({"error": doc["error"]} if "error" in doc else {})
