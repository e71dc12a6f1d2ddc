"""DRM license server emulator: Widevine-, FairPlay-, PlayReady-style and Clear Key."""

__version__ = "0.1.0"
