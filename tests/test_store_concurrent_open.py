"""Several processes opening one new store file at once (two workers meeting a new namespace)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from license_server.store import Store
from license_server.store_schema import MIGRATIONS

OPENERS = 4


def open_and_report(path: str, start: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    start.wait()
    try:
        store = Store.open(path)
        results.put(("ok", store.schema_version))
        store.close()
    except Exception as error:  # reported to the test, which shows it
        results.put(("error", f"{type(error).__name__}: {error}"))


def test_processes_that_open_one_new_file_at_once_all_get_the_migrated_store(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    for attempt in range(3):
        path = str(tmp_path / f"race-{attempt}.db")
        start, results = context.Barrier(OPENERS), context.Queue()
        openers = [context.Process(target=open_and_report, args=(path, start, results)) for _ in range(OPENERS)]
        for opener in openers:
            opener.start()
        outcomes = [results.get(timeout=60) for _ in openers]
        for opener in openers:
            opener.join(timeout=60)
        assert outcomes == [("ok", len(MIGRATIONS))] * OPENERS, outcomes
