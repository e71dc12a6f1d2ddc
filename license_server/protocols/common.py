"""Protocol facts shared by every dialect (sans-I/O).

The attestation nonce rule belongs to the core (:mod:`license_server.core.attestation`);
it is re-exported here for the codecs and the device's CDMs.
"""

from __future__ import annotations

from license_server.core.attestation import ATTESTATION_NONCE_LABEL, attestation_nonce

__all__ = ["ATTESTATION_NONCE_LABEL", "attestation_nonce"]
