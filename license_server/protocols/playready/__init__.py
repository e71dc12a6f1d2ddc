"""PlayReady dialect in the real formats, sans-I/O: WRMHEADER and PRO, BCert
chains (``certificates``), the license challenge (``challenge``: the one
parsing entry point), XMR licenses (``xmr``; built by ``license.build_license_response``,
the one license-building entry point), SOAP messages and faults, and the test
server's ``cfg=`` syntax. No aiohttp, no storage, no clock reads.
"""

from __future__ import annotations

SYSTEM = "playready"
SYSTEM_ID = bytes.fromhex("9a04f07998404286ab92e65be0885f95")  # PSSH system id

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
PROTOCOLS_NS = "http://schemas.microsoft.com/DRM/2007/03/protocols"
MESSAGES_NS = "http://schemas.microsoft.com/DRM/2007/03/protocols/messages"
HEADER_NS = "http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader"

# SOAPAction URIs. AcquireLicense and AcknowledgeLicense are the public ones;
# the secure stop / secure delete URIs are this emulator's, in the same namespace.
ACTION_ACQUIRE = PROTOCOLS_NS + "/AcquireLicense"
ACTION_ACKNOWLEDGE = PROTOCOLS_NS + "/AcknowledgeLicense"
ACTION_SECURE_STOP = PROTOCOLS_NS + "/ProcessSecureStop"
ACTION_SECURE_DELETE = PROTOCOLS_NS + "/ProcessSecureDelete"

# Security levels carried by device certificates and licenses.
SL150, SL2000, SL3000 = 150, 2000, 3000
SECURITY_LEVELS = (SL150, SL2000, SL3000)

MAX_BODY_BYTES = 64 * 1024
