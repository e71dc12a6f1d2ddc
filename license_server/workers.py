"""Running the server in one process or in several that share the port and the store.

With ``--workers N`` the parent forks N-1 workers; every process builds its own
application (its own SQLite connection: connections never cross a fork) and
binds the same port with ``SO_REUSEPORT``, so the kernel spreads connections
over them. Everything that must agree between workers lives outside process
memory: the store (SQLite in WAL mode; grants, caps and single-use tokens are
decided inside ``BEGIN IMMEDIATE`` transactions), and each namespace's state
documents in it (test clock, faults, revocations, rights overlay: re-read when
the store's state generation moves, see :mod:`license_server.namespaces`).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger(__name__)

MakeApp = Callable[[], web.Application]
Printer = Callable[[str], None]


def run(make_app: MakeApp, *, host: str, port: int, workers: int, print_line: Printer | None) -> None:
    """Serve until interrupted; with ``workers > 1`` stop the forked workers on the way out."""
    if workers <= 1:
        web.run_app(make_app(), host=host, port=port, access_log=None, print=print_line)
        return
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_worker, args=(make_app, host, port), name=f"license-server-worker-{i}",
                                daemon=True) for i in range(1, workers)]
    for child in children:
        child.start()
    log.info("%d worker processes share %s:%d (SO_REUSEPORT)", workers, host, port)
    try:
        web.run_app(make_app(), host=host, port=port, reuse_port=True, access_log=None, print=print_line)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.join(10)


def _worker(make_app: MakeApp, host: str, port: int) -> None:
    web.run_app(make_app(), host=host, port=port, reuse_port=True, access_log=None, print=None)
