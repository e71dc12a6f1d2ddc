"""``license-server keys init``: writes the public, test-only key material.

RSA keys are fresh on every run; content KIDs and keys are derived from a
fixed public label, so re-running ``keys init --force`` keeps media that was
packaged earlier playable.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TypedDict

from license_server import crypto
from license_server.protocols.widevine.certificates import CertType, issue_certificate
from license_server.rights import RIGHTS_FILE, default_rights

CONTENT_KEY_LABEL = b"drm-license-emulator PUBLIC TEST CONTENT KEY v1"


class DeviceModel(TypedDict):
    """One emulated device model the Widevine-style root signs."""

    name: str
    system_id: int
    security_level: str
    device_type: str


MODELS: tuple[DeviceModel, ...] = (
    {"name": "emulated-phone-l1", "system_id": 7001, "security_level": "L1", "device_type": "mobile"},
    {"name": "emulated-tablet-l1", "system_id": 7002, "security_level": "L1", "device_type": "tablet"},
    {"name": "emulated-phone-l3", "system_id": 7101, "security_level": "L3", "device_type": "mobile"},
    {"name": "emulated-laptop-l3", "system_id": 7102, "security_level": "L3", "device_type": "laptop"},
)

GENUINE_APP_PACKAGE = "com.example.drmplayer"
GENUINE_APP_SIGNING_DIGEST = hashlib.sha256(b"drm-license-emulator PUBLIC TEST app signing certificate").hexdigest()

TITLES = (
    ("demo-movie", "Demo Movie", ("AUDIO", "SD", "HD", "UHD1")),
    ("demo-episode", "Demo Episode", ("AUDIO", "SD", "HD")),
    ("stream-only", "Stream-Only Title (downloads forbidden by the owner)", ("AUDIO", "SD", "HD")),
)
STREAM_ONLY = ("stream-only",)  # rights.json: the owner forbids downloads

README = """# keys/: PUBLIC TEST KEYS — NOT SECRET, NOT FOR PRODUCTION

Everything in this directory is published with the source code of the DRM
license server emulator. Anyone can read these private keys and content keys.
They exist so that tests, CI pipelines and player teams get deterministic,
self-contained key material. Never protect real content with them.

The server logs a loud warning when it serves these keys on an address other
than loopback.

Regenerate with:

    license-server keys init --dir keys --force

What is here:

- `widevine/root.*` — the emulated Widevine-style root of trust (self-signed
  `SignedDrmCertificate`, RSA-2048).
- `widevine/models.json` and `widevine/models/` — device-model intermediates,
  each with a `system_id` and a security level (L1 = emulated TEE, L3 = software),
  signed by the root. The device emulator provisions devices from them; each
  device's leaf certificate carries its model's `system_id` too, as real ones do.
- `widevine/service.*` — the license server's service certificate and key
  (answers the `08 04` service-certificate request; privacy mode).
- `fairplay/app.*` — the provider's emulated FairPlay application certificate
  (self-signed X.509, RSA-2048) and its key: SPCs wrap their key to it and
  `GET /fairplay/certificate` serves it.
- `playready/root.*`, `playready/models.json` and `playready/models/` — the
  emulated PlayReady ECC P-256 root and model (ISSUER) BCert certificates
  (SL3000 for L1 models, SL2000 for L3 models, plus the SL150 test model
  `emulated-test-sl150`); devices chain their PlayReady identity to them.
- `playready/license-server.key.pem` and `playready/license-server-public.pem` —
  the emulated PlayReady license server key (the WMRM key role): challenges'
  client data is encrypted to its public half, which third-party clients use.
- `apps.json` — the genuine player app (package and signing-certificate digest)
  that attestation accepts; anything else is refused with APP_NOT_GENUINE.
- `tokens/signing-keys.jwks.json` — the PRIVATE keys of an emulated operator
  backend that signs entitlement tokens (`license-server token issue` uses
  them); `tokens/jwks.json` — the JWK set the license server verifies tokens
  with (kids `test-hs256`, `test-rs256`, `test-es256`; the HS256 secret is in
  both because it is symmetric).
- `rights.json` — content-owner rights and business rules: tiers (download
  rights, device cap, monthly allowance), active downloads per device, and
  per-title rules (downloadable, windows, regions, per-track requirements).
- `keyserver/seed.json` — the PUBLIC TEST KEY SEED of the key service: the KID
  and key of every (content id, track, crypto period) a packager fetches are
  derived from it (see docs/key-server.md). `packagers/` — the signers allowed to
  call the key service: `widevine_test` (the AES key and IV of the Shaka Packager
  tutorial) and `rsa_test` (its PKCS#1 DER private key `rsa_test.key.der` is here).
- `catalog.json` — titles, tracks, KIDs and content keys. KIDs and keys are
  derived from the public label `{label}`
  with SHA-256, so they are the same after every regeneration.
"""


def init_token_keys(directory: Path) -> list[Path]:
    """The operator's entitlement-token keys: private JWKs to sign, a JWK set to verify."""
    from license_server.crypto.jwk import generate_token_keys

    directory.mkdir(parents=True, exist_ok=True)
    private, public = generate_token_keys("test")
    (directory / "signing-keys.jwks.json").write_text(json.dumps(private, indent=2) + "\n", encoding="utf-8")
    (directory / "jwks.json").write_text(json.dumps(public, indent=2) + "\n", encoding="utf-8")
    return [directory / "signing-keys.jwks.json", directory / "jwks.json"]


def derive_content_key(content_id: str, track: str, purpose: str) -> bytes:
    """Deterministic 16-byte KID or key for a title's track."""
    return hashlib.sha256(CONTENT_KEY_LABEL + f"|{content_id}|{track}|{purpose}".encode()).digest()[:16]


def build_catalog() -> dict:
    contents = {}
    for content_id, name, tracks in TITLES:
        contents[content_id] = {
            "title": name,
            "tracks": {
                track: {
                    "kid": derive_content_key(content_id, track, "kid").hex(),
                    "key": derive_content_key(content_id, track, "key").hex(),
                }
                for track in tracks
            },
        }
    return {"contents": contents}


def init_keys(directory: Path, *, force: bool, now: int) -> list[Path]:
    """Write the whole ``keys/`` tree; refuse to overwrite unless ``force``."""
    wv = directory / "widevine"
    if (directory / "catalog.json").exists() and not force:
        raise FileExistsError(f"{directory} already holds keys; pass --force to regenerate them")
    (wv / "models").mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(path: Path, data: bytes | str) -> None:
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        written.append(path)

    root_key = crypto.generate_rsa_private_key()
    root = issue_certificate(
        cert_type=CertType.ROOT,
        public_key=crypto.public_key_der(root_key),
        serial_number=crypto.random_bytes(16),
        issuer_key_pem=root_key,
        issuer=None,
        created=now,
    )
    write(wv / "root.key.pem", root_key)
    write(wv / "root.cert.bin", root.SerializeToString())

    for model in MODELS:
        key = crypto.generate_rsa_private_key()
        cert = issue_certificate(
            cert_type=CertType.DEVICE_MODEL,
            public_key=crypto.public_key_der(key),
            serial_number=crypto.random_bytes(16),
            issuer_key_pem=root_key,
            issuer=root,
            system_id=model["system_id"],
            created=now,
        )
        write(wv / "models" / f"{model['name']}.key.pem", key)
        write(wv / "models" / f"{model['name']}.cert.bin", cert.SerializeToString())
    write(wv / "models.json", json.dumps({"models": list(MODELS)}, indent=2) + "\n")

    service_key = crypto.generate_rsa_private_key()
    service = issue_certificate(
        cert_type=CertType.SERVICE,
        public_key=crypto.public_key_der(service_key),
        serial_number=crypto.random_bytes(16),
        issuer_key_pem=root_key,
        issuer=root,
        created=now,
        provider_id="license.emulator.test",
    )
    write(wv / "service.key.pem", service_key)
    write(wv / "service.cert.bin", service.SerializeToString())

    written.extend(init_fairplay_keys(directory / "fairplay", now=now))
    from license_server.playready_keys import init_playready_keys

    written.extend(init_playready_keys(directory / "playready", widevine_models=MODELS, now=now))

    write(directory / "catalog.json", json.dumps(build_catalog(), indent=2) + "\n")
    write(directory / RIGHTS_FILE, default_rights(STREAM_ONLY).model_dump_json(indent=2, exclude_none=True) + "\n")
    written.extend(init_token_keys(directory / "tokens"))
    apps = {"apps": [{"package": GENUINE_APP_PACKAGE, "signing_digest": GENUINE_APP_SIGNING_DIGEST}]}
    write(directory / "apps.json", json.dumps(apps, indent=2) + "\n")
    from license_server.derived_keys import SEED_FILE, default_seed, seed_document
    from license_server.packager_signers import init_packager_keys

    (directory / SEED_FILE).parent.mkdir(parents=True, exist_ok=True)
    write(directory / SEED_FILE, seed_document(default_seed()))
    written.extend(init_packager_keys(directory))
    write(directory / "README.md", README.format(label=CONTENT_KEY_LABEL.decode()))
    return written


def init_fairplay_keys(directory: Path, *, now: int) -> list[Path]:
    """The emulated FairPlay application certificate (X.509, RSA-2048) and its private key."""
    from license_server.crypto import fairplay as fpcrypto

    directory.mkdir(parents=True, exist_ok=True)
    key = crypto.generate_rsa_private_key()
    cert = fpcrypto.issue_app_certificate(key, common_name="drm-license-emulator FairPlay application certificate",
                                          not_before=now - 86400, not_after=now + 20 * 365 * 86400)
    (directory / "app.key.pem").write_bytes(key)
    (directory / "app.cert.der").write_bytes(cert)
    return [directory / "app.key.pem", directory / "app.cert.der"]
