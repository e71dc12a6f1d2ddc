"""The packagers allowed to call the key service: ``keys/packagers/<name>.json``.

Each file names a signer and its request-signing credentials, as the Widevine
common-encryption API knows them::

    {"signer": "widevine_test", "aes_key": "<hex, 32 bytes>", "aes_iv": "<hex, 16 bytes>",
     "rsa_public_key": "<name>.pub.pem"}          # either or both methods

AES signing: the signature is AES-256-CBC (PKCS#7) of SHA-1 over the request,
under the signer's key and IV. RSA signing: RSASSA-PSS with SHA-1 (salt 20).
``widevine_test`` carries the AES key and IV published in the Shaka Packager
tutorial: PUBLIC TEST CREDENTIALS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from license_server import crypto

SIGNERS_DIR = "packagers"


@dataclass(frozen=True)
class Signer:
    name: str
    aes_key: bytes | None = field(default=None, repr=False)
    aes_iv: bytes | None = field(default=None, repr=False)
    rsa_public_der: bytes | None = None

    def verifies(self, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this signer's AES or RSA signature of ``message``."""
        if self.aes_key is not None and self.aes_iv is not None:
            expected = crypto.aes_cbc_encrypt(self.aes_key, self.aes_iv, crypto.sha1(message))
            if crypto.constant_time_equal(expected, signature):
                return True
        if self.rsa_public_der is not None:
            try:
                crypto.rsa_pss_verify(self.rsa_public_der, message, signature)
                return True
            except crypto.CryptoError:
                return False
        return False


def load_signers(keys_dir: Path) -> dict[str, Signer]:
    """Every signer of ``keys/packagers/`` (empty when the directory is absent)."""
    directory = keys_dir / SIGNERS_DIR
    signers: dict[str, Signer] = {}
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else ():
        doc = json.loads(path.read_text(encoding="utf-8"))
        rsa = doc.get("rsa_public_key")
        signer = Signer(
            name=doc["signer"],
            aes_key=bytes.fromhex(doc["aes_key"]) if doc.get("aes_key") else None,
            aes_iv=bytes.fromhex(doc["aes_iv"]) if doc.get("aes_iv") else None,
            rsa_public_der=crypto.rsa_public_der_from_pem((directory / rsa).read_bytes()) if rsa else None,
        )
        if signer.aes_key is not None and (len(signer.aes_key) not in (16, 24, 32) or len(signer.aes_iv or b"") != 16):
            raise ValueError(f"{path}: aes_key must be 16, 24 or 32 bytes and aes_iv 16 bytes")
        signers[signer.name] = signer
    return signers


WIDEVINE_TEST_AES_KEY = "1ae8ccd0e7985cc0b6203a55855a1034afc252980e970ca90e5202689f947ab9"
WIDEVINE_TEST_AES_IV = "d58ce954203b7c9a9a9d467f59839249"


def init_packager_keys(keys_dir: Path) -> list[Path]:
    """Write the test signers (``widevine_test`` with the tutorial's AES credentials; ``rsa_test``
    with a fresh RSA key whose PKCS#1 DER private key is published for ``--rsa_signing_key_path``)."""
    directory = keys_dir / SIGNERS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    private_der, public_pem = crypto.generate_rsa_signing_pair()
    files = {
        "widevine_test.json": json.dumps({
            "signer": "widevine_test",
            "comment": "PUBLIC TEST CREDENTIALS: the AES signing key and IV of the Shaka Packager tutorial.",
            "aes_key": WIDEVINE_TEST_AES_KEY, "aes_iv": WIDEVINE_TEST_AES_IV}, indent=2) + "\n",
        "rsa_test.json": json.dumps({
            "signer": "rsa_test",
            "comment": ("PUBLIC TEST CREDENTIALS: rsa_test.key.der (PKCS#1 DER, for --rsa_signing_key_path) "
                        "is published."),
            "rsa_public_key": "rsa_test.pub.pem"}, indent=2) + "\n",
    }
    written = []
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
        written.append(directory / name)
    (directory / "rsa_test.key.der").write_bytes(private_der)
    (directory / "rsa_test.pub.pem").write_bytes(public_pem)
    return written + [directory / "rsa_test.key.der", directory / "rsa_test.pub.pem"]
