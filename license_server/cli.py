"""``license-server``: run the server, manage test keys, benchmark."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import NoReturn

import click
from aiohttp import web

from license_server import __version__, logs
from license_server.clock import ControlledClock, SystemClock, monotonic, wall_clock_now
from license_server.eventloop import install_fast_event_loop
from license_server.keyring import Keyring, KeyringError, default_keys_dir, load_keyring
from license_server.metrics import disable_multiprocess, enable_multiprocess
from license_server.settings import Settings
from license_server.store import PREWARM_READS, PREWARM_SECONDS, AuditRetention, SqlStore, Store
from license_server.store_api import DEFAULT_NAMESPACE, StoreFactory
from license_server.store_batch import LoopBatchStore
from license_server.store_factory import SqliteStores
from license_server.store_url import StoreLocation
from license_server.store_writer import GroupCommitStore

log = logging.getLogger("license_server")

PUBLIC_KEYS_WARNING = """
################################################################################
#  WARNING: serving the PUBLIC TEST KEYS from {keys} on {host}.
#  Anyone can decrypt content protected by these keys. Use them for testing
#  only, on networks you trust; bind to 127.0.0.1 unless you must.
################################################################################"""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "DRM_SERVER"})
@click.version_option(__version__, prog_name="license-server")
def main() -> None:
    """DRM license server emulator (Widevine-, FairPlay-, PlayReady-style, Clear Key)."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", default=8080, show_default=True, type=int, help="TCP port 0-65535 (0 picks a free one).")
@click.option("--data-dir", default="data", show_default=True, type=click.Path(path_type=Path),
              help="Directory of the SQLite stores, one per namespace (created if missing).")
@click.option("--keys", "keys_dir", default=None, type=click.Path(path_type=Path),
              help="keys/ directory [default: the project's public test keys].")
@click.option("--test-clock", is_flag=True, help="Run on a controlled clock that /admin/clock can move.")
@click.option("--allow-compromised-devices", is_flag=True,
              help="NEGATIVE TESTING ONLY: serve rooted/tampered devices (software keys only).")
@click.option("--require-attestation", is_flag=True,
              help="Refuse challenges without attestation evidence (ATTESTATION_REQUIRED) instead of serving them "
                   "as unverified, software-only platforms (e.g. stock Widevine CDMs).")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--log-format", default="text", show_default=True, type=click.Choice(["text", "json"]),
              help="Log lines as text, or one JSON object per line plus an access line per request "
                   "(docs/observability.md).")
@click.option("--media-dir", default=None, type=click.Path(path_type=Path, file_okay=False),
              help="Packaged media served through presigned /media URLs [default: DATA_DIR/media].")
@click.option("--admin-token", default=None, envvar="DRM_SERVER_ADMIN_TOKEN", show_envvar=True,
              help="Bearer token of the /admin/ API (16+ visible ASCII characters) [default: generate one, "
                   "print it once and write it to DATA_DIR/admin-token].")
@click.option("--admin-remote", is_flag=True, envvar="DRM_SERVER_ADMIN_REMOTE",
              help="Let non-loopback clients use the /admin/ API (the token is still required).")
@click.option("--require-token", is_flag=True,
              help="Strict mode: every license and download request needs an entitlement token (X-DRM-Token).")
@click.option("--no-stream-limits", "no_stream_limits", is_flag=True,
              help="NEGATIVE TESTING ONLY: ignore max_streams (no stream sessions, no STREAM_* refusals).")
@click.option("--token-jwks", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help="JWK set of the keys that sign entitlement tokens [default: KEYS/tokens/jwks.json].")
@click.option("--token-audience", default=None, help="Require this `aud` in entitlement tokens.")
@click.option("--token-issuer", default=None, help="Require this `iss` in entitlement tokens.")
@click.option("--token-leeway", default=30, show_default=True, type=click.IntRange(0, 600),
              help="Seconds of clock skew tolerated for exp, nbf and iat.")
@click.option("--audit-max-rows", default=100_000, show_default=True, type=click.IntRange(0, 10**12),
              help="Refusal audit rows kept, newest first (0: no limit).")
@click.option("--audit-max-age", default="30d", show_default=True, callback=lambda _c, _p, v: _audit_age(v),
              help="How long refusal audit rows are kept (e.g. 12h, 30d; 0: no limit).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Processes sharing the port (SO_REUSEPORT) and the store (the test clock and faults too).")
@click.option("--max-namespaces", default=1000, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Namespaces (/ns/<name>/) the server creates at most, default included (docs/namespaces.md).")
@click.option("--reports-dir", default=None, type=click.Path(path_type=Path, file_okay=False),
              help="Directory of conformance reports the web console (/console) lists and opens.")
@click.option("--store-mode", type=click.Choice(["direct", "batch", "group"]), default=None,
              envvar="DRM_SERVER_STORE_MODE", show_envvar=True,
              help="SQLite: batch (default) commits the grants of one event-loop pass together; direct: one "
                   "transaction per write; group: a writer thread group-commits every write (docs/store.md). "
                   "PostgreSQL: direct only.")
@click.option("--store-sync", type=click.Choice(["normal", "full"]), default="normal", show_default=True,
              envvar="DRM_SERVER_STORE_SYNC", show_envvar=True,
              help="SQLite durability: normal survives a process crash (kill -9) and syncs the WAL at background "
                   "checkpoints; full also survives power loss, with one WAL sync per commit (per batch in batch "
                   "and group mode). docs/store.md.")
@click.option("--prewarm", "prewarm_seconds", default=PREWARM_SECONDS, show_default=True,
              type=click.FloatRange(0, 600), envvar="DRM_SERVER_PREWARM", show_envvar=True,
              help="SQLite: seconds each worker may spend at start reading into its page cache the indexes "
                   "that grants write, so that no holder's first grant waits for the file (0: off; docs/store.md).")
@click.option("--store", "store_url", default=None, envvar="DRM_SERVER_STORE", show_envvar=True,
              help="sqlite:///FILE or postgresql://USER@HOST[:PORT]/DB (shared by replicas, docs/deployment.md) "
                   "[default: the SQLite file in DATA_DIR].")
def serve(host: str, port: int, data_dir: Path, keys_dir: Path | None, test_clock: bool,
          allow_compromised_devices: bool, log_level: str, media_dir: Path | None = None,
          admin_token: str | None = None, admin_remote: bool = False, require_token: bool = False,
          token_jwks: Path | None = None, token_audience: str | None = None, token_issuer: str | None = None,
          token_leeway: int = 30, workers: int = 1, require_attestation: bool = False,
          reports_dir: Path | None = None, audit_max_rows: int = 100_000,
          audit_max_age: int | None = 30 * 86400, store_mode: str | None = None, no_stream_limits: bool = False,
          max_namespaces: int = 1000, log_format: str = "text", store_url: str | None = None,
          store_sync: str = "normal", prewarm_seconds: float = PREWARM_SECONDS) -> None:
    """Run the license server on its embedded SQLite stores, or a shared PostgreSQL database (--store)."""
    from license_server import workers as serving
    from license_server.app import create_app

    if workers > 1 and port == 0:
        raise click.UsageError("--workers needs a fixed --port (the workers share it)")

    if not 0 <= port <= 65535:
        _startup_failed(f"port {port} is out of range (0-65535; 0 picks a free one)")
    settings = Settings(host=host, port=port, data_dir=data_dir, keys_dir=keys_dir, test_clock=test_clock,
                        allow_compromised_devices=allow_compromised_devices, log_level=log_level,
                        log_format=log_format)
    settings.media_dir = media_dir
    settings.admin_remote = admin_remote
    settings.require_token, settings.token_jwks, settings.token_leeway = require_token, token_jwks, token_leeway
    settings.token_audience, settings.token_issuer = token_audience, token_issuer
    settings.workers, settings.max_namespaces = workers, max_namespaces
    settings.require_attestation = require_attestation
    settings.stream_limits = not no_stream_limits
    settings.reports_dir = reports_dir
    settings.audit_max_rows, settings.audit_max_age = audit_max_rows, audit_max_age or 0
    retention = AuditRetention(max_rows=settings.audit_max_rows, max_age=settings.audit_max_age)
    logs.configure(settings.log_level, settings.log_format)
    location = _store_location(store_url, settings, store_mode)
    store_mode = store_mode or ("batch" if location.kind == "sqlite" else "direct")
    keyring = _keyring(settings.keys_dir)
    _preflight(settings, keyring)  # nothing is written before every check passed
    _prepare_store(location)
    try:
        _admin_token(settings, admin_token)
    except OSError as exc:
        _startup_failed(f"cannot write {settings.admin_token_path}: {exc.strerror or exc}")
    if keyring.is_public_test_keyring and not settings.is_loopback:
        log.warning(PUBLIC_KEYS_WARNING.format(keys=keyring.directory, host=settings.host))

    def make_app() -> web.Application:
        clock = ControlledClock() if settings.test_clock else SystemClock()
        stores = _open_stores(location, store_mode, retention, store_sync.upper())  # one store per namespace
        store = stores.open(DEFAULT_NAMESPACE)
        if isinstance(store, Store) and prewarm_seconds > 0:
            _prewarm(store, prewarm_seconds)
        app = create_app(settings, store=store, keyring=keyring, clock=clock, stores=stores)

        async def close_store(_: web.Application) -> None:
            stores.close()

        app.on_cleanup.append(close_store)
        return app

    log.info("license server %s: keys %s, store %s%s", __version__, keyring.directory, location.shown,
             ", TEST CLOCK" if settings.test_clock else "")
    log.info("event loop: %s", install_fast_event_loop())
    metrics_dir = enable_multiprocess() if workers > 1 else None  # a scrape sums every worker's counters
    try:
        serving.run(make_app, host=settings.host, port=settings.port, workers=workers, print_line=_printer(settings))
    finally:
        if metrics_dir is not None:
            disable_multiprocess(metrics_dir)


def _prewarm(store: Store, seconds: float) -> None:
    start = monotonic()
    done = store.prewarm(seconds)
    log.info("store prewarmed: %d of %d reads in %.2f s%s", done, len(PREWARM_READS), monotonic() - start,
             "" if done == len(PREWARM_READS) else " (stopped at --prewarm)")


def _printer(settings: Settings) -> Callable[[str], None]:
    """aiohttp's "Running on" banner: a stderr line in text mode, a log record in JSON mode."""
    def echo(message: str) -> None:
        line = message.replace("(Press CTRL+C to quit)", "").strip()
        if settings.log_format == "json":
            log.info("%s", line.strip("= "))
        else:
            click.echo(line, err=True)

    return echo


def _store_location(store_url: str | None, settings: Settings, store_mode: str | None) -> StoreLocation:
    from license_server.store_url import parse_store_url

    if store_url is None:
        return StoreLocation("sqlite", path=settings.database_path)
    try:
        location = parse_store_url(store_url)
    except ValueError as exc:
        _startup_failed(f"--store: {exc}")
    if location.kind != "sqlite" and store_mode in ("batch", "group"):
        _startup_failed(f"--store-mode {store_mode} batches writes to one SQLite file: use --store-mode direct "
                        "with PostgreSQL")
    return location


def _prepare_store(location: StoreLocation) -> None:
    """Create and migrate the store once, before any worker starts; a clear line and exit 2 if it cannot be."""
    try:
        if location.path is not None:
            Store.open(location.path).close()
        else:
            from license_server.store_pg import PgStores

            stores = PgStores(location.url or "", size=1)
            stores.open(DEFAULT_NAMESPACE)
            stores.close()
    except Exception as exc:
        from license_server.store_pg import _reason

        _startup_failed(f"cannot open the store {location.shown}: {_reason(exc)}")


def _open_stores(location: StoreLocation, store_mode: str, retention: AuditRetention,
                 synchronous: str = "NORMAL") -> StoreFactory[SqlStore]:
    """This worker's stores, one per namespace: SQLite files under the data dir (or beside ``--store
    sqlite:///FILE``, which holds the default namespace), or schemas of the PostgreSQL database."""
    if location.path is None:
        from license_server.store_pg import PgStores

        return PgStores(location.url or "", retention=retention)

    def open_store(path: Path) -> Store:
        if store_mode == "group":
            return GroupCommitStore(path, retention=retention, synchronous=synchronous)
        if store_mode == "batch":
            return LoopBatchStore(path, retention=retention, synchronous=synchronous)
        return Store.open(path, retention=retention, synchronous=synchronous)

    return SqliteStores(location.path.parent, open_store=open_store, default_path=location.path)


def _audit_age(value: str) -> int:
    from license_server.clock import parse_duration

    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    if seconds < 0:
        raise click.BadParameter("must not be negative")
    return seconds


@main.group()
def keys() -> None:
    """Manage the public, test-only key material."""


@keys.command("init")
@click.option("--dir", "directory", default="keys", show_default=True, type=click.Path(path_type=Path),
              help="Where to write the keys.")
@click.option("--force", is_flag=True, help="Overwrite existing keys (content keys stay the same).")
def keys_init(directory: Path, force: bool) -> None:
    """Generate the emulated roots, device models, service identity and catalog."""
    from license_server.keygen import init_keys

    try:
        written = init_keys(directory, force=force, now=wall_clock_now())
    except FileExistsError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"wrote {len(written)} files to {directory} (PUBLIC TEST KEYS: never use for real content)")


def _admin_token(settings: Settings, given: str | None) -> None:
    """Use ``--admin-token``, or generate one: printed once to stderr, written to DATA_DIR/admin-token."""
    from pydantic import ValidationError

    from license_server.admin_auth import generate_token, write_token_file

    if given is not None:
        try:
            settings.admin_token = Settings(admin_token=given).admin_token
        except ValidationError:
            raise click.BadParameter("use 16 to 256 visible ASCII characters (no spaces)",
                                     param_hint="--admin-token") from None
        settings.admin_token_path.unlink(missing_ok=True)  # a stale generated token must not mislead scripts
    else:
        settings.admin_token = generate_token()
        write_token_file(settings.admin_token_path, settings.admin_token)
        if settings.log_format == "json":  # a log is collected and kept: the token goes to the file only
            log.info("admin token generated and written to %s (mode 0600)", settings.admin_token_path)
        else:
            click.echo(f"admin token (also in {settings.admin_token_path}, mode 0600): {settings.admin_token}",
                       err=True)
    if settings.admin_remote:
        log.warning("the admin API accepts non-loopback clients (--admin-remote); keep the token secret")


def _preflight(settings: Settings, keyring: Keyring) -> None:
    from license_server.serve_checks import StartupError, check_data_dir, check_port, check_token_keys

    try:
        check_port(settings.host, settings.port)
        check_data_dir(settings.data_dir)
        check_token_keys(settings, keyring)
    except StartupError as exc:
        _startup_failed(str(exc))


def _startup_failed(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _keyring(keys_dir: Path | None) -> Keyring:
    try:
        return load_keyring(keys_dir or default_keys_dir())
    except (KeyringError, OSError, ValueError) as exc:
        _startup_failed(f"cannot load the keys: {exc}")


from license_server.cli_package import package as _package_command  # noqa: E402

main.add_command(_package_command)

from license_server.cli_token import token as _token_command  # noqa: E402

main.add_command(_token_command)

from license_server.cli_inspect import console_bench_command as _console_bench_command  # noqa: E402
from license_server.cli_inspect import inspect_command as _inspect_command  # noqa: E402

main.add_command(_inspect_command)
main.add_command(_console_bench_command)

PLUGIN_GROUP = "license_server.commands"


def _load_plugins() -> None:
    """Add the commands other installed packages declare (e.g. ``bench``, from the device emulator).

    An entry point of group ``license_server.commands`` names a click command; the
    server package never imports the packages that provide them.
    """
    for entry in entry_points(group=PLUGIN_GROUP):
        if entry.name in main.commands:
            continue
        try:
            command = entry.load()
        except ImportError as exc:  # the providing package is not importable here: skip its command
            log.debug("license-server plugin %s unavailable: %s", entry.name, exc)
            continue
        main.add_command(command, name=entry.name)


_load_plugins()


if __name__ == "__main__":  # pragma: no cover
    main()
