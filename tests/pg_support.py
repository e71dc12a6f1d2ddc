"""A throwaway PostgreSQL cluster for the tests (one per session), or ``DRM_TEST_POSTGRES_URL``.

The cluster is made with Debian's ``initdb`` and ``pg_ctl`` in a temporary directory and listens
on a free loopback port; PostgreSQL refuses to run as root, so as root it runs as ``nobody``.
Without the binaries the PostgreSQL tests are skipped, except under ``CI``, where that is an error
(``.ci/setup`` installs them): they never silently vanish from a CI run.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

URL_VARIABLE = "DRM_TEST_POSTGRES_URL"


def pg_bin() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl`` (Debian keeps them out of PATH), or None."""
    found = shutil.which("initdb")
    if found and (Path(found).resolve().parent / "pg_ctl").exists():
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """A PostgreSQL server in ``root`` on a loopback port, owned by an unprivileged user when we are root."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="drm-pg-"))
        self.port = _free_port()
        self.user = "nobody" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(self.root, self.user)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stderr or result.stdout}")

    def start(self) -> str:
        data = str(self.root / "data")
        self._run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -k {self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", data, "-o", options, "-l", str(self.root / "log"), "-w", "-t", "30", "start")
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def require_binaries() -> Path:
    """Where PostgreSQL's binaries are; a skip without them, or a failure when ``CI`` is set."""
    bindir = pg_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) are missing: .ci/setup installs Debian's postgresql")
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    return bindir


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A server URL the tests may create databases on (a superuser's)."""
    given = os.environ.get(URL_VARIABLE)
    if given:
        yield given
        _drop_created(given)
        return
    cluster = Cluster(require_binaries())
    url = cluster.start()
    try:
        yield url
    finally:
        cluster.stop()


_CREATED: list[str] = []


def fresh_database(server_url: str) -> str:
    """Create an empty database on the server; its URL."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    _CREATED.append(name)
    return server_url.rsplit("/", 1)[0] + "/" + name


def _drop_created(server_url: str) -> None:
    """On a server we did not start, drop the databases the session created."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        for name in _CREATED:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _CREATED.clear()


@pytest.fixture
def postgres_db(postgres_url: str) -> str:
    """The URL of a new, empty database (one per test)."""
    return fresh_database(postgres_url)


@pytest.fixture(scope="session")
def pg_stores(postgres_url: str) -> Iterator[object]:
    """One PostgreSQL store factory for the session (its own database); tests take fresh namespaces."""
    from license_server.store_pg import PgStores

    stores = PgStores(fresh_database(postgres_url))
    yield stores
    stores.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest) -> Iterator[object]:
    """The store contract's subject: an in-memory SQLite store, or a fresh namespace on PostgreSQL."""
    if request.param == "sqlite":
        from license_server.store import Store

        store = Store.memory()
        yield store
        store.close()
    else:
        yield request.getfixturevalue("pg_stores").open("t-" + uuid.uuid4().hex[:12])
