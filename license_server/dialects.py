"""The dialect registry: every wire dialect declares its parts here, once.

A dialect is one package under :mod:`license_server.protocols` (its sans-I/O
codec) plus the parts that live where the dependency direction wants them: the
server's routes in :mod:`license_server.handlers`, the device's CDM and offline
adapter in :mod:`device_emulator`, and the conformance client in
:mod:`conformance`. A :class:`Dialect` names those parts as ``"module:attribute"``
references, so this module imports none of them: the server never imports the
device emulator, and the protocols stay free of I/O.

Everything that iterates dialects (the app factory, fault injection, the admin
models, the device's dispatchers, the conformance catalog) iterates
:data:`REGISTRY`. A fifth dialect is one new package plus one line in
:data:`REGISTRY`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dialect:
    """One wire dialect and where each of its parts lives."""

    name: str
    """Stable name on the command line, in the store and in fault plans: ``widevine``."""
    title: str
    """Human name: ``Widevine-style``."""
    pssh_system_id: str
    """The DRM system id of its PSSH boxes (a UUID string)."""
    license_path: str
    """The license endpoint, relative to the server root."""
    route_prefix: str
    """The path prefix of every route of the dialect (fault injection matches on it)."""
    codec: str
    """The sans-I/O codec module."""
    cfg_grammar: str
    """The dialect's ``?cfg=`` grammar: the function its handler calls to turn the query into
    :class:`~license_server.core.policy.PolicyOverrides` (directly, or through a typed test-server
    configuration whose ``overrides()`` gives them)."""
    routes: str
    """``setup(app)``: registers the dialect's aiohttp routes."""
    device_cdm: str
    """The device emulator's client for this dialect."""
    offline_adapter: str
    """The device's offline-lifecycle adapter."""
    conformance_client: str
    """The conformance suite's license client."""
    serves_unattested: bool = False
    """Real clients of the dialect cannot carry our attestation evidence, so a challenge without it is
    served as an unverified, software-only platform (unless the server requires attestation)."""

    def load(self, part: str) -> Any:
        """Import and return one part by its field name, e.g. ``dialect.load("routes")``."""
        reference: str = getattr(self, part)
        module_name, _, attribute = reference.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attribute) if attribute else module


WIDEVINE = Dialect(
    name="widevine",
    title="Widevine-style",
    pssh_system_id="edef8ba9-79d6-4ace-a3c8-27dcd51d21ed",
    license_path="/widevine/license",
    route_prefix="/widevine",
    codec="license_server.protocols.widevine.codec",
    cfg_grammar="license_server.protocols.cfg:parse_overrides",
    routes="license_server.handlers.widevine:setup",
    device_cdm="device_emulator.cdm.widevine:WidevineCdm",
    offline_adapter="device_emulator.offline.widevine:ADAPTER",
    conformance_client="conformance.dialects:WidevineDialect",
    serves_unattested=True,  # stock CDMs (e.g. pywidevine) send no evidence
)

FAIRPLAY = Dialect(
    name="fairplay",
    title="FairPlay-style",
    pssh_system_id="94ce86fb-07ff-4f43-adb8-93d2fa968ca2",
    license_path="/fairplay/license",
    route_prefix="/fairplay",
    codec="license_server.protocols.fairplay",
    cfg_grammar="license_server.protocols.fairplay.policy:overrides_for",
    routes="license_server.handlers.fairplay:setup",
    device_cdm="device_emulator.cdm.fairplay:FairPlayCdm",
    offline_adapter="device_emulator.offline.fairplay:ADAPTER",
    conformance_client="conformance.dialects:FairPlayDialect",
)

PLAYREADY = Dialect(
    name="playready",
    title="PlayReady-style",
    pssh_system_id="9a04f079-9840-4286-ab92-e65be0885f95",
    license_path="/playready/rightsmanager.asmx",
    route_prefix="/playready",
    codec="license_server.protocols.playready",
    cfg_grammar="license_server.protocols.playready.testcfg:parse_cfg",
    routes="license_server.handlers.playready:setup",
    device_cdm="device_emulator.cdm.playready:PlayReadyCdm",
    offline_adapter="device_emulator.offline.playready:ADAPTER",
    conformance_client="conformance.dialects:PlayReadyDialect",
    serves_unattested=True,  # stock clients (e.g. pyplayready) carry no EmulatorClientData evidence
)

CLEARKEY = Dialect(
    name="clearkey",
    title="W3C Clear Key",
    pssh_system_id="1077efec-c0b2-4d02-ace3-3c1e52e2fb4b",
    license_path="/clearkey/license",
    route_prefix="/clearkey",
    codec="license_server.protocols.clearkey",
    cfg_grammar="license_server.protocols.cfg:parse_overrides",
    routes="license_server.handlers.clearkey:setup",
    device_cdm="device_emulator.cdm.clearkey:ClearKeyCdm",
    offline_adapter="device_emulator.offline.clearkey:ADAPTER",
    conformance_client="conformance.dialects:ClearKeyDialect",
)

REGISTRY: tuple[Dialect, ...] = (WIDEVINE, FAIRPLAY, PLAYREADY, CLEARKEY)
"""Every dialect, in the order the server registers routes and reports list them."""

BY_NAME: dict[str, Dialect] = {dialect.name: dialect for dialect in REGISTRY}
NAMES: tuple[str, ...] = tuple(BY_NAME)


def unattested_systems() -> frozenset[str]:
    """Names of the dialects that serve challenges without attestation evidence as unverified platforms."""
    return frozenset(d.name for d in REGISTRY if d.serves_unattested)


def dialect(name: str) -> Dialect:
    """The dialect called ``name``; KeyError names the known ones."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown dialect {name!r}; known: {', '.join(NAMES)}") from None
