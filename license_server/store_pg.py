"""The PostgreSQL store: :class:`~license_server.store_sql.SqlStore` over a psycopg 3 connection pool.

One schema per namespace (``drm_<name>``; ``drm_default`` for the default namespace), so every
namespace has the same tables as a SQLite file and a reset or a listing never touches another
namespace's rows. Cross-replica atomicity (docs/deployment.md):

* replay keys, single-use token ids and report keys: primary keys, inserted with
  ``ON CONFLICT DO NOTHING`` (a concurrent insert of the same key waits for the first
  transaction and then inserts nothing);
* caps: transaction-scoped advisory locks on the device and the account
  (:meth:`PgBackend.serialize`), taken before the usage snapshot, so two grants for the same
  last slot are decided one after the other even when no row exists yet to lock;
* lifecycle, releases and reports: ``SELECT ... FOR UPDATE`` on the license row;
* document writes: the namespace's ``state_generation`` row, updated first.

Transactions run at READ COMMITTED: every decision above is guarded by a lock or a constraint.
Migrations run on open under an advisory lock, so replicas that start together apply them once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache, partial
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from license_server.core.model import Grant
from license_server.errors import DrmError
from license_server.store_api import DEFAULT_NAMESPACE, NamespaceLifecycle, valid_namespace
from license_server.store_pg_schema import PG_MIGRATIONS
from license_server.store_sql import AuditRetention, SqlStore

SCHEMA_PREFIX = "drm_"
POOL_SIZE = 8


class _Connection(psycopg.Connection[Any]):
    """A pooled connection that remembers which namespace schema its ``search_path`` points at."""

    schema: str | None = None


def schema_name(namespace: str) -> str:
    if not valid_namespace(namespace):
        raise ValueError(f"not a namespace name: {namespace!r}")
    return SCHEMA_PREFIX + namespace


def _quoted(schema: str) -> str:
    return '"' + schema + '"'  # namespace names are [a-z0-9-]: nothing to escape


@lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    """The store's portable ``?`` placeholders as psycopg's ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Fetched:
    """The rows of a statement whose connection went back to the pool."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self.rowcount = cursor.rowcount
        self.description = cursor.description
        self._rows: list[Any] = cursor.fetchall() if cursor.description is not None else []

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows


class PgBackend:
    """Statements of one namespace schema on a shared pool; a transaction pins one connection per thread."""

    for_update = " FOR UPDATE"
    join_in_order = "JOIN"

    def __init__(self, pool: ConnectionPool[Any], schema: str) -> None:
        self.pool, self.schema = pool, schema
        self._local = threading.local()

    def _pinned(self) -> _Connection | None:
        return getattr(self._local, "conn", None)

    @contextmanager
    def _connection(self) -> Iterator[_Connection]:
        with self.pool.connection() as conn:
            assert isinstance(conn, _Connection)
            if conn.schema != self.schema:
                conn.execute(f"SET search_path TO {_quoted(self.schema)}")
                conn.schema = self.schema
            yield conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Fetched:
        conn = self._pinned()
        if conn is not None:
            return _Fetched(conn.execute(_placeholders(sql), params))
        with self._connection() as conn:
            return _Fetched(conn.execute(_placeholders(sql), params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        conn = self._pinned()
        if conn is None:
            with self.transaction():
                return self.executemany(sql, rows)
        with conn.cursor() as cursor:
            cursor.executemany(_placeholders(sql), list(rows))
        return None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        conn = self._pinned()
        if conn is not None:  # nested: a savepoint
            with conn.transaction():
                yield
            return
        with self._connection() as conn:
            self._local.conn = conn
            try:
                with conn.transaction():
                    yield
            finally:
                self._local.conn = None

    def serialize(self, *keys: str) -> None:
        for key in sorted(set(keys)):  # one order everywhere: no deadlock between two grants
            self.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (f"{self.schema}:{key}",))

    def try_serialize(self, key: str) -> bool:
        row = self.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(?, 0))", (f"{self.schema}:{key}",))
        return bool(row.fetchone()[0])

    def hint(self, index: str) -> str:
        return ""

    def unindexed(self, column: str) -> str:
        return column  # PostgreSQL plans from statistics

    def close(self) -> None:
        return None  # the pool belongs to PgStores


def migrate(pool: ConnectionPool[Any], schema: str) -> int:
    """Create the schema and apply the migrations it lacks, in one transaction under an advisory lock; the version."""
    with pool.connection() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"license-server-migrate:{schema}",))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quoted(schema)}")
        conn.execute(f"SET LOCAL search_path TO {_quoted(schema)}")
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), "
                     "version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1, 0) ON CONFLICT DO NOTHING")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(PG_MIGRATIONS[version:], start=version + 1):
            conn.execute(script.encode())  # several statements, no parameters
            conn.execute("UPDATE schema_version SET version = %s", (number,))
            version = number
    if isinstance(conn, _Connection):
        conn.schema = None  # SET LOCAL ended with the transaction
    return version


class PgStore(SqlStore):
    """The PostgreSQL store of one namespace. Grants and refusals have ``*_async`` twins that run the same
    write on a worker thread, so the event loop never waits on the database for them."""

    def __init__(self, pool: ConnectionPool[Any], schema: str, *, retention: AuditRetention | None = None,
                 executor: ThreadPoolExecutor | None = None) -> None:
        super().__init__(PgBackend(pool, schema), retention=retention)
        self.schema = schema
        self._executor = executor
        self._version = migrate(pool, schema)
        self.fill_slot_ends()

    @property
    def schema_version(self) -> int:
        return self._version

    async def _off_loop(self, call: partial[Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def record_grant_async(self, grant: Grant, **kwargs: Any) -> None:
        await self._off_loop(partial(self.record_grant, grant, **kwargs))

    async def record_refusal_async(self, error: DrmError, **kwargs: Any) -> None:
        await self._off_loop(partial(self.record_refusal, error, **kwargs))


def open_pool(url: str, *, size: int = POOL_SIZE, timeout: float = 10.0) -> ConnectionPool[Any]:
    """A pool of autocommit connections to ``url``; raises ``psycopg.OperationalError`` if none can be opened."""
    try:  # one direct connection first: its error says why (the pool would only retry until its timeout)
        psycopg.connect(url, connect_timeout=int(timeout)).close()
    except psycopg.Error as exc:
        raise psycopg.OperationalError(_reason(exc)) from exc
    pool: ConnectionPool[Any] = ConnectionPool(url, connection_class=_Connection, kwargs={"autocommit": True},
                                               min_size=1, max_size=size, open=False, timeout=timeout,
                                               name="license-server")
    pool.open(wait=False)
    try:
        with pool.connection(timeout=timeout) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        pool.close()
        raise psycopg.OperationalError(_reason(exc)) from exc
    return pool


def _reason(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, psycopg.Error):
        cause = cause.__cause__ or cause.__context__
    text = str(cause or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class PgStores(NamespaceLifecycle):
    """Opens and caches the PostgreSQL store of each namespace, all on one pool (a :class:`StoreFactory`)."""

    def __init__(self, url: str, *, retention: AuditRetention | None = None, size: int = POOL_SIZE) -> None:
        self.pool = open_pool(url, size=size)
        self.retention = retention
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="pg-store")
        self._stores: dict[str, PgStore] = {}
        self._lock = threading.Lock()

    def open(self, namespace: str) -> PgStore:
        store = self._stores.get(namespace)
        if store is not None:
            return store
        schema = schema_name(namespace)
        with self._lock:
            store = self._stores.get(namespace)
            if store is None:
                store = self._stores[namespace] = PgStore(self.pool, schema, retention=self.retention,
                                                          executor=self.executor)
        return store

    def names(self) -> list[str]:
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)",
                                (SCHEMA_PREFIX,)).fetchall()
        found = [row[0][len(SCHEMA_PREFIX):] for row in rows]
        listed = [name for name in found if valid_namespace(name) and self.listed(name)]
        return sorted({DEFAULT_NAMESPACE, *listed})


    def close(self) -> None:
        with self._lock:
            self._stores.clear()
        self.executor.shutdown(wait=True)
        self.pool.close()
