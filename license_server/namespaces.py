"""Namespaces at run time: for each name, its store, test clock, faults, revocations, rights
overlay and license service (see :mod:`license_server.store_api` and ``docs/namespaces.md``).

A request names its namespace with a ``/ns/<name>/`` path prefix (stripped by
:class:`NamespaceRouter` before routing, so every route serves it) or an ``X-DRM-Namespace``
header; the path wins; neither means ``default``. :func:`namespace_middleware` opens the namespace
(created on first use, at most ``max_namespaces`` of them), refreshes it, and hands it to the
handlers through :func:`namespace_of`. Keys, the catalog, the token keys and the settings are
shared by every namespace.

Refresh: before a request is served, the namespace's store answers one read, its
``state_generation``; when it moved (any worker or replica wrote a state document, or reset the
namespace), the four documents are parsed again. Requests that start in the same pass of the event
loop share one read: they arrived together, and none of them has run yet. A replica therefore
notices a change by the first request that starts after it, and a request in progress sees one
consistent state.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from yarl import URL

from license_server.clock import Clock, OffsetClock
from license_server.core.attestation import AttestationRules
from license_server.core.service import GrantListener, LicenseService
from license_server.errors import DrmError, ErrorCode
from license_server.faults import StoredFaults
from license_server.keyring import Keyring
from license_server.revocations import RevocationList
from license_server.rights import RightsBook, ShippedRights
from license_server.settings import Settings
from license_server.store import Store
from license_server.store_api import (
    CLOCK_DOCUMENT,
    DEFAULT_NAMESPACE,
    DELETED_DOCUMENT,
    FAULTS_DOCUMENT,
    REVOCATIONS_DOCUMENT,
    RIGHTS_DOCUMENT,
    NamespaceLifecycle,
    StoreFactory,
    valid_namespace,
)
from license_server.store_sql import SqlStore
from license_server.tokens import TokenVerifier

log = logging.getLogger(__name__)

NAMESPACE_HEADER = "X-DRM-Namespace"
PATH_PREFIX = "/ns/"
# request keys: the name the request asked for (None: none, so default), and the namespace that serves it
REQUESTED: web.RequestKey[str | None] = web.RequestKey("drm_namespace_requested")


def clock_offset(text: str | None) -> int:
    """The offset (seconds) a ``clock`` document holds; 0 when absent or unreadable."""
    try:
        return int(json.loads(text)["offset"]) if text else 0
    except (ValueError, TypeError, KeyError):
        log.error("ignoring an unreadable clock document")
        return 0


@dataclass
class Namespace:
    """Everything a request needs that belongs to one namespace."""

    name: str
    store: SqlStore
    clock: OffsetClock
    faults: StoredFaults
    revocations: RevocationList
    rights: RightsBook
    service: LicenseService
    test_clock: bool = False
    _generation: int | None = field(default=None, repr=False)
    _read_this_pass: bool = field(default=False, repr=False)

    @property
    def url_prefix(self) -> str:
        """What URLs the server hands out start with: ``""`` in default, ``/ns/<name>`` elsewhere."""
        return "" if self.name == DEFAULT_NAMESPACE else f"{PATH_PREFIX}{self.name}"

    def refresh(self) -> None:
        """One store read per pass of the event loop; parse the state documents again when another
        writer moved them."""
        if self._read_this_pass:
            return
        try:  # forgotten when this pass ends; without a running loop, every call reads
            asyncio.get_running_loop().call_soon(self._next_pass)
            self._read_this_pass = True
        except RuntimeError:
            pass
        generation = self.store.state_generation()
        if generation == self._generation:
            return
        store = self.store
        self.clock.offset = clock_offset(store.document(CLOCK_DOCUMENT)) if self.test_clock else 0
        self.faults.load(store.document(FAULTS_DOCUMENT))
        self.revocations.load(store.document(REVOCATIONS_DOCUMENT))
        self.rights.load(store.document(RIGHTS_DOCUMENT))
        if self.name != DEFAULT_NAMESPACE and store.document(DELETED_DOCUMENT) is not None:
            store.update_document(DELETED_DOCUMENT, lambda _: None)  # used again: listed again
            generation = store.state_generation()
        self._generation = generation

    def _next_pass(self) -> None:
        self._read_this_pass = False


CURRENT = web.RequestKey("drm_namespace", Namespace)


@dataclass(frozen=True)
class Shared:
    """What every namespace of a server shares."""

    settings: Settings
    keyring: Keyring
    clock: Clock
    rules: AttestationRules
    rights: ShippedRights
    tokens: TokenVerifier | None
    on_grant: GrantListener | None = None


class Namespaces:
    """The namespaces this process has opened, built on first use from the app's store factory."""

    def __init__(self, stores: StoreFactory[SqlStore], shared: Shared) -> None:
        self.stores = stores
        self.shared = shared
        self._open: dict[str, Namespace] = {}

    def get(self, name: str) -> Namespace:
        """The namespace ``name`` (INVALID_NAMESPACE, NAMESPACE_LIMIT_REACHED)."""
        found = self._open.get(name)
        if found is not None:
            return found
        if not valid_namespace(name):
            raise DrmError(ErrorCode.INVALID_NAMESPACE, f"not a namespace name: {name[:60]!r}")
        limit = self.shared.settings.max_namespaces
        if name != DEFAULT_NAMESPACE:
            names = self.stores.names()
            if name not in names and len(names) >= limit:
                raise DrmError(ErrorCode.NAMESPACE_LIMIT_REACHED,
                               f"this server holds {len(names)} namespaces (--max-namespaces {limit})")
        store = self.stores.open(name)
        if name == DEFAULT_NAMESPACE:
            import_legacy_files(store, self.shared.settings)
        namespace = self._open[name] = self._build(name, store)
        return namespace

    def _build(self, name: str, store: SqlStore) -> Namespace:
        shared = self.shared
        clock = OffsetClock(shared.clock)
        revocations, rights = RevocationList(store), RightsBook(shared.rights, store)
        service = LicenseService(keyring=shared.keyring, store=store, clock=clock, revocations=revocations,
                                 rules=shared.rules, rights=rights, tokens=shared.tokens,
                                 require_token=shared.settings.require_token,
                                 stream_limits=shared.settings.stream_limits, on_grant=shared.on_grant)
        return Namespace(name=name, store=store, clock=clock, faults=StoredFaults(store), revocations=revocations,
                         rights=rights, service=service, test_clock=shared.settings.test_clock)

    def reset(self, name: str) -> None:
        self.stores.reset(name)

    def delete(self, name: str) -> None:
        if name == DEFAULT_NAMESPACE:
            raise DrmError(ErrorCode.NAMESPACE_NOT_DELETABLE)
        self.stores.delete(name)

    def names(self) -> list[str]:
        return self.stores.names()


def import_legacy_files(store: SqlStore, settings: Settings) -> None:
    """Upgrade path: a data dir from before namespaces kept ``revocations.json`` and ``rights.json``;
    the default namespace takes them in once, when it has no such document yet."""
    for document, path in ((REVOCATIONS_DOCUMENT, settings.revocations_path),
                           (RIGHTS_DOCUMENT, settings.rights_overlay_path)):
        if store.document(document) is not None or not path.is_file():
            continue
        store.update_document(document, _unless_present(path.read_text(encoding="utf-8")))
        log.warning("imported %s into the default namespace's %r document; later edits of the file are not read "
                    "(use the admin API)", path, document)


def _unless_present(text: str) -> Callable[[str | None], str | None]:
    def change(current: str | None) -> str | None:
        return current if current is not None else text

    return change


NAMESPACES = web.AppKey("namespaces", Namespaces)


def namespace_of(request: web.Request) -> Namespace:
    """The namespace a request is served in (opened and refreshed by :func:`namespace_middleware`)."""
    current = request.get(CURRENT)  # set by the middleware for every request that reaches a handler
    if isinstance(current, Namespace):
        return current
    return _enter(request)


def _enter(request: web.Request) -> Namespace:
    """Open and refresh the request's namespace, and remember it on the request."""
    namespace = request.app[NAMESPACES].get(requested_name(request))
    namespace.refresh()
    request[CURRENT] = namespace
    return namespace


def requested_name(request: web.Request) -> str:
    name = request.get(REQUESTED)
    if isinstance(name, str):
        return name
    return request.headers.get(NAMESPACE_HEADER, DEFAULT_NAMESPACE).strip()


@web.middleware
async def namespace_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Open and refresh the request's namespace before anything else looks at it."""
    _enter(request)
    return await handler(request)


def split_path(path: str) -> tuple[str | None, str]:
    """``/ns/<name>/rest`` -> (``name``, ``/rest``); any other path -> (``None``, path)."""
    if not path.startswith(PATH_PREFIX):
        return None, path
    name, _, rest = path[len(PATH_PREFIX):].partition("/")
    return name, "/" + rest


class NamespaceRouter(web.UrlDispatcher):
    """Routes ``/ns/<name>/...`` exactly like ``/...``, recording the name on the request."""

    async def resolve(self, request: web.Request) -> web.UrlMappingMatchInfo:  # type: ignore[override]
        name, rest = split_path(request.rel_url.path)
        request[REQUESTED] = name  # always set: a key that is there is found without a KeyError
        if name is None:
            return await super().resolve(request)
        stripped = URL.build(path=rest, query_string=request.rel_url.query_string)
        match = await super().resolve(request.clone(rel_url=stripped))
        return match  # type: ignore[return-value]


def namespace_path(request: web.Request) -> str:
    """The request's path without its ``/ns/<name>`` prefix."""
    return split_path(request.path)[1]


class MemoryStores(NamespaceLifecycle):
    """A :class:`~license_server.store_api.StoreFactory` of in-memory stores (tests, and apps built
    with a single store): the given store is ``default``, other namespaces get fresh memory stores."""

    def __init__(self, default: SqlStore) -> None:
        self._stores: dict[str, SqlStore] = {DEFAULT_NAMESPACE: default}

    def open(self, namespace: str) -> SqlStore:
        if not valid_namespace(namespace):
            raise ValueError(f"not a namespace name: {namespace!r}")
        store = self._stores.get(namespace)
        if store is None:
            store = self._stores[namespace] = Store.memory()
        return store

    def names(self) -> list[str]:
        return sorted(name for name in self._stores if self.listed(name))

    def close(self) -> None:
        for name, store in list(self._stores.items()):
            if name != DEFAULT_NAMESPACE:  # the caller owns the default store
                store.close()
                del self._stores[name]
