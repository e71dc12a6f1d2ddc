"""The application factory: ``create_app(settings, store=..., keyring=..., clock=...)``."""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace

from aiohttp import web

from license_server import derived_keys
from license_server.clock import Clock
from license_server.core.service import attestation_rules
from license_server.dialects import REGISTRY, unattested_systems
from license_server.handlers import admin, health, keyserver
from license_server.handlers import media as media_origin
from license_server.http import CLOCK, KEYRING, METRICS, SETTINGS, error_middleware
from license_server.http_limits import handler_args
from license_server.http_observe import observe_middleware
from license_server.keyring import Keyring
from license_server.metrics import Metrics
from license_server.namespaces import NAMESPACES, MemoryStores, NamespaceRouter, Namespaces, Shared
from license_server.rights import ShippedRights
from license_server.settings import Settings
from license_server.store_api import DEFAULT_NAMESPACE, StoreFactory
from license_server.store_sql import SqlStore as Store
from license_server.tokens import TokenKeys, TokenVerifier

log = logging.getLogger(__name__)


def token_verifier(settings: Settings, keyring: Keyring) -> TokenVerifier | None:
    """Entitlement-token verification keys: ``--token-jwks``, else the keyring's test JWK set."""
    path = settings.token_jwks or keyring.token_jwks_path
    if not path.exists():
        if settings.require_token:
            raise FileNotFoundError(f"--require-token needs a JWK set; {path} does not exist")
        log.warning("no entitlement-token keys at %s: tokens will be refused", path)
        return None
    keys = TokenKeys.from_file(path)
    log.info("entitlement tokens: %s (kids %s)%s", path, ", ".join(keys.kids) or "none",
             ", REQUIRED" if settings.require_token else "; development mode without a token")
    return TokenVerifier(keys, audience=settings.token_audience, issuer=settings.token_issuer,
                         leeway=settings.token_leeway)


def create_app(settings: Settings, *, store: Store, keyring: Keyring, clock: Clock,
               stores: StoreFactory[Store] | None = None) -> web.Application:
    """Build the server. ``store`` is the default namespace's; ``stores`` opens the others (default:
    in-memory stores). ``clock`` is the base of every namespace's clock. Tests pass an in-memory
    store and a controlled clock."""
    keyring = derived_keys.with_derived_titles(keyring, settings.data_dir)  # key-service titles (issue 13)
    with warnings.catch_warnings():  # aiohttp deprecates passing a router; a subclass is how /ns/ routes everything
        warnings.simplefilter("ignore", DeprecationWarning)
        app = web.Application(client_max_size=settings.max_body_bytes, handler_args=handler_args(),
                              router=NamespaceRouter())
    app[SETTINGS] = settings
    app[METRICS] = metrics = Metrics()
    app.middlewares.extend([observe_middleware(app), error_middleware])  # observe: outermost, sees every answer
    app[KEYRING] = keyring
    app[CLOCK] = clock
    factory = stores if stores is not None else MemoryStores(store)
    shared = Shared(settings=settings, keyring=keyring, clock=clock, rights=ShippedRights(keyring.rights_path),
                    rules=replace(attestation_rules(keyring, allow_compromised=settings.allow_compromised_devices),
                                  require_attestation=settings.require_attestation,
                                  unattested_systems=unattested_systems()),
                    tokens=token_verifier(settings, keyring), on_grant=metrics.granted)
    app[NAMESPACES] = Namespaces(factory, shared)
    app[NAMESPACES].get(DEFAULT_NAMESPACE)  # the default namespace (and its upgrade import) opens at start
    if stores is None:
        app.on_cleanup.append(lambda _app: _close(factory))
    if not settings.stream_limits:
        log.warning("NEGATIVE-TESTING MODE: concurrent-stream limits are off (--no-stream-limits)")
    if settings.allow_compromised_devices:
        log.warning("NEGATIVE-TESTING MODE: rooted and tampered devices are served (as TAMPERED, software keys only)")
    health.setup(app)
    admin.setup(app)
    for dialect in REGISTRY:
        dialect.load("routes")(app)
    media_origin.setup(app)
    keyserver.setup(app)  # key service for packagers (issue 13): not a license dialect, so not in REGISTRY

    from license_server import console  # web console and inspector: additive, reads the store only

    console.setup(app)
    return app


async def _close(stores: StoreFactory[Store]) -> None:
    stores.close()
