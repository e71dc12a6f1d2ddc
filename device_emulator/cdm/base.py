"""The one interface every dialect's device CDM implements.

A CDM turns a content id into a challenge and a license answer into keys
loaded in a session of its key holder (the device's TEE, the PlayReady ECC key
holder, or Clear Key's in-memory session store). It performs no I/O of its
own: the dispatcher (:mod:`device_emulator.acquire`) posts what
:meth:`Cdm.wire` frames, and a CDM that must fetch something before its first
challenge (a service or application certificate) does it in :meth:`Cdm.prepare`
through the :class:`Link` it is handed.

The walk of an acquisition, the same for every dialect::

    cdm.prepare(link)                       certificates, if the dialect needs one
    pending = cdm.build_challenge(content_id, kind)
    outgoing = cdm.wire(pending)            -> POST as is (``device-emulator challenge`` writes it)
    loaded = cdm.process_license(pending, cdm.license_answer(reply))
    cdm.persisted(pending, loaded)          what a persistent license stores
    cdm.settle(link, pending, loaded)       acknowledge (PlayReady) / drop request secrets (FairPlay)
    cdm.close(loaded)

Renewal and release exist where the dialect has them (:attr:`Cdm.renewable`);
elsewhere they raise :class:`~device_emulator.errors.NotSupported`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from device_emulator.errors import NotSupported
from license_server.core.model import LicenseKind

if TYPE_CHECKING:
    from device_emulator.device import Device
    from device_emulator.transport import HttpReply


@dataclass(frozen=True)
class Outgoing:
    """A challenge exactly as it goes on the wire: body, content type and extra headers."""

    body: bytes
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Persisted:
    """The dialect-specific columns of a stored persistent license."""

    version: int
    request_msg: bytes
    license_msg: bytes
    signature: bytes
    wrapped_session_key: bytes
    license_start: int


class Link(Protocol):
    """The network as a CDM sees it while preparing (the dispatcher's HTTP transport)."""

    @property
    def server(self) -> str: ...

    @property
    def target(self) -> str: ...

    def post(self, body: bytes, *, content_type: str = ..., headers: dict[str, str] | None = None) -> HttpReply: ...

    def get(self, path: str) -> HttpReply: ...


class Loaded(Protocol):
    """What every dialect's loaded license offers the dispatcher and the offline lifecycle."""

    @property
    def handle(self) -> int: ...

    @property
    def license_id(self) -> str: ...

    @property
    def kind(self) -> LicenseKind: ...

    @property
    def platform_verification(self) -> str: ...

    def policy(self) -> dict[str, Any]: ...


class Cdm(ABC):
    """One dialect's client; construct it with the device (``Cdm(device)``)."""

    system: ClassVar[str]
    """The dialect's registry name."""
    device_identity: ClassVar[bool] = True
    """False for Clear Key: its requests carry no device certificate and no attestation."""
    renewable: ClassVar[bool] = False
    """The dialect renews licenses (Widevine-style only)."""

    def __init__(self, device: Device) -> None:
        self.device = device

    def prepare(self, link: Link, *, privacy: bool = True) -> None:  # noqa: B027 - optional step
        """Fetch what the first challenge needs (nothing by default)."""

    @abstractmethod
    def build_challenge(self, content_id: str, kind: LicenseKind) -> Any:
        """A signed challenge for ``content_id`` (the returned pending request has a ``body``)."""

    def wire(self, pending: Any) -> Outgoing:
        """The challenge framed as the dialect posts it."""
        return Outgoing(pending.body)

    def license_answer(self, reply: HttpReply) -> bytes:
        """The license bytes inside an HTTP answer (the body, unless the dialect wraps it)."""
        return reply.body

    @abstractmethod
    def process_license(self, pending: Any, answer: bytes) -> Loaded:
        """Verify the answer to ``pending`` and load its keys; CdmError if refused."""

    @property
    @abstractmethod
    def holder(self) -> Any:
        """The key holder of the sessions: ``key_info``, ``export_content_keys``, ``decrypt_samples``, ``close``."""

    @abstractmethod
    def persisted(self, pending: Any, loaded: Any) -> Persisted:
        """The columns a persistent license is stored with."""

    def settle(self, link: Link, pending: Any, loaded: Any) -> None:  # noqa: B027 - optional step
        """After the license is stored: acknowledge it or drop per-request secrets (nothing by default)."""

    def close(self, loaded: Any) -> None:
        self.holder.close(loaded.handle)

    def build_renewal(self, loaded: Any, *, seconds_since_started: int) -> bytes:
        raise NotSupported("RENEWAL_NOT_SUPPORTED", f"{self.system} licenses have no renewal")

    def build_release(self, loaded: Any, *, seconds_since_started: int = 0) -> bytes:
        raise NotSupported("RELEASE_NOT_SUPPORTED", f"{self.system} has no license release request")
