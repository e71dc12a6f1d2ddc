"""Protocol facts shared by every dialect (sans-I/O)."""

from __future__ import annotations

import hashlib

ATTESTATION_NONCE_LABEL = b"drm-license-emulator attestation nonce v1|"


def attestation_nonce(request_id: bytes) -> bytes:
    """The nonce that binds attestation evidence to exactly one challenge.

    Evidence whose nonce is not this value for the challenge's request id was
    produced for another request and is refused as replayed.
    """
    return hashlib.sha256(ATTESTATION_NONCE_LABEL + request_id).digest()[:16]
