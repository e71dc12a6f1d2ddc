"""What the conformance checks cite: public specifications and the project's own documents.

Every ``reference=`` of a check is built from these, so a reader can follow it:
W3C EME sections by URL, the public Widevine license protocol, Microsoft's
PlayReady and Apple's FairPlay Streaming documentation, and the documents in
this repository (``docs/*.md``, ``README.md`` sections).
"""

from __future__ import annotations

EME = "https://www.w3.org/TR/encrypted-media/"
EME_SESSION_TYPES = f"W3C EME, MediaKeySessionType: temporary vs persistent-license ({EME}#dom-mediakeysessiontype)"
EME_CLEAR_KEY = f"W3C EME, Clear Key ({EME}#clear-key)"
EME_REMOVE = f"W3C EME, MediaKeySession.remove() and the license release message ({EME}#dom-mediakeysession-remove)"
EME_SECURITY = f"W3C EME, Security ({EME}#security)"

WIDEVINE = "public Widevine license protocol (license_protocol.proto, https://github.com/devine-dl/pywidevine)"
FAIRPLAY = "Apple FairPlay Streaming documentation (https://developer.apple.com/streaming/fps/)"
PLAYREADY = "Microsoft PlayReady documentation (https://learn.microsoft.com/en-us/playready/)"
PLAYREADY_SECURE_DELETE = ("PlayReady Secure Delete "
                           "(https://learn.microsoft.com/en-us/playready/overview/secure-delete-server)")
PLAYREADY_SECURE_STOP = "PlayReady Secure Stop (https://learn.microsoft.com/en-us/playready/features/secure-stop-pk)"

ATTESTATION = "README.md, Device attestation"
POLICY_CFG = "README.md, Per-request policy: cfg="
OFFLINE = "docs/offline-lifecycle.md"
OFFLINE_CLOCKS = "docs/offline-lifecycle.md, The two clocks per dialect"
DESTRUCTION = "docs/offline-lifecycle.md, Destruction records and their reports"
ENTITLEMENTS = "docs/entitlements.md"
RIGHTS = "docs/entitlements.md, Rights and business rules: rights.json"
DOWNLOADS = "docs/downloads.md"
FAIRPLAY_DOC = "docs/fairplay.md"
PLAYREADY_DOC = "docs/playready.md"
CONFORMANCE_ROBUSTNESS = "docs/conformance.md, Robustness vectors"
ERROR_CODES = "README.md, Error codes"
THIRD_PARTY_CDMS = "docs/third-party-cdms.md"


def cite(*parts: str) -> str:
    """One reference string from several sources."""
    return "; ".join(parts)
