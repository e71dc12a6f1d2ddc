"""A starting server reads the pages grants write at their holder's position into its page cache.

Not timed: the reads must be served by the structures they name (a read the planner served from
another index would warm the wrong pages), the time budget must cut off even a read that never
ends, and ``serve`` must run it (and skip it with ``--prewarm 0``).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from license_server.bench_store import Probe, fill
from license_server.sqlite_support import prewarm
from license_server.store import PREWARM_READS, Store
from tests.conftest import run_cli

ENDLESS = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"


def test_every_prewarm_read_is_served_by_the_structure_it_names() -> None:
    store = Store.memory()
    fill(store, 500, holders=20)
    for sql in PREWARM_READS:
        plan = " ".join(row[3] for row in store.db.conn.execute("EXPLAIN QUERY PLAN " + sql))
        named = re.search(r"INDEXED BY (\w+)", sql)
        if named:  # an index of licenses, read alone (no table row behind each entry)
            assert f"USING COVERING INDEX {named.group(1)}" in plan, (sql, plan)
        elif "NOT INDEXED" in sql or "monthly_grants" in sql:  # the table itself
            assert plan.startswith("SCAN "), (sql, plan)
        else:  # a primary-key index
            assert "USING COVERING INDEX sqlite_autoindex_" in plan, (sql, plan)
    assert store.prewarm(5.0) == len(PREWARM_READS)
    store.close()


def test_the_budget_cuts_off_a_read_that_never_ends_and_leaves_the_connection_usable() -> None:
    store = Store.memory()
    fill(store, 200, holders=10)
    started = time.monotonic()
    assert prewarm(store.db.conn, [ENDLESS, *PREWARM_READS], seconds=0.2) == 0
    assert time.monotonic() - started < 5
    time.sleep(0.25)  # past the deadline: a handler left behind would interrupt the next long statement
    assert store.db.execute("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 200000) "
                            "SELECT count(*) FROM n").fetchone()[0] == 200_000
    Probe(store, "p", 10).grant()  # and the store still takes a grant
    store.close()


def test_no_budget_reads_nothing() -> None:
    store = Store.memory()
    assert store.prewarm(0.0) == 0
    store.close()


def test_serve_prewarms_its_store_and_says_so(server_process) -> None:
    server = server_process("--log-level", "INFO")
    server.stop()
    assert f"store prewarmed: {len(PREWARM_READS)} of {len(PREWARM_READS)} reads" in server.log.read_text()


def test_serve_skips_the_prewarm_when_told(server_process) -> None:
    server = server_process("--log-level", "INFO", "--prewarm", "0")
    server.stop()
    log = server.log.read_text()
    assert "store prewarmed" not in log and "license server" in log


def test_the_group_writer_prewarms_the_connection_its_grants_run_on(tmp_path: Path) -> None:
    from license_server.store_writer import GroupCommitStore

    store = GroupCommitStore(tmp_path / "g.db")
    traced: dict[str, list[str]] = {"loop": [], "writer": []}
    store.db.conn.set_trace_callback(traced["loop"].append)
    store._writer.db.conn.set_trace_callback(traced["writer"].append)
    try:
        assert store.prewarm(5.0) == len(PREWARM_READS)
    finally:
        store.close()
    assert traced["writer"] == list(PREWARM_READS) and traced["loop"] == []


def test_serve_refuses_a_negative_prewarm() -> None:
    result = run_cli("serve", "--prewarm", "-1", module="license_server.cli")
    assert result.returncode == 2 and "--prewarm" in result.stderr
