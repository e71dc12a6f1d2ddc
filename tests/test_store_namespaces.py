"""The stores' state documents (SQLite and PostgreSQL) and the per-namespace store factory (store_api)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from license_server.store import Store
from license_server.store_api import DEFAULT_NAMESPACE, valid_namespace
from license_server.store_factory import SqliteStores


def test_documents_round_trip_and_move_the_generation(any_store) -> None:
    store = any_store
    start = store.state_generation()
    assert store.document("clock") is None
    assert store.update_document("clock", lambda old: json.dumps({"offset": 60})) == '{"offset": 60}'
    assert store.document("clock") == '{"offset": 60}'
    assert store.state_generation() == start + 1
    store.update_document("clock", lambda old: None)
    assert store.document("clock") is None
    assert store.state_generation() == start + 2


def test_a_failing_change_leaves_the_document_and_generation_alone(any_store) -> None:
    store = any_store
    store.update_document("faults", lambda old: "[]")
    generation = store.state_generation()

    def refuse(old: str | None) -> str | None:
        raise ValueError("no")

    with pytest.raises(ValueError):
        store.update_document("faults", refuse)
    assert store.document("faults") == "[]"
    assert store.state_generation() == generation


def test_two_connections_see_each_others_documents(tmp_path: Path) -> None:
    one, two = Store.open(tmp_path / "s.db"), Store.open(tmp_path / "s.db")
    before = two.state_generation()
    one.update_document("rights", lambda old: '{"tiers": {}}')
    assert two.state_generation() == before + 1
    assert two.document("rights") == '{"tiers": {}}'


def test_namespaces_have_separate_files_and_are_listed(tmp_path: Path) -> None:
    stores = SqliteStores(tmp_path)
    assert stores.names() == [DEFAULT_NAMESPACE]
    stores.open("ci-a").update_document("clock", lambda old: '{"offset": 1}')
    assert stores.open("ci-b").document("clock") is None
    assert stores.path(DEFAULT_NAMESPACE) == tmp_path / "license-server.db"
    assert stores.open("ci-a") is stores.open("ci-a")
    assert stores.names() == ["ci-a", "ci-b", "default"]


def test_reset_empties_every_table_and_delete_unlists(tmp_path: Path) -> None:
    stores = SqliteStores(tmp_path)
    store = stores.open("job-1")
    store.update_document("clock", lambda old: '{"offset": 5}')
    store.db.execute("INSERT INTO seen_requests VALUES ('k', 1)")
    other = SqliteStores(tmp_path).open("job-1")  # another worker's connection
    generation = other.state_generation()
    stores.reset("job-1")
    assert other.document("clock") is None
    assert other.db.execute("SELECT count(*) FROM seen_requests").fetchone()[0] == 0
    assert other.state_generation() > generation
    stores.delete("job-1")
    assert "job-1" not in stores.names()
    with pytest.raises(ValueError):
        stores.delete(DEFAULT_NAMESPACE)


@pytest.mark.parametrize("name", ["", "A", "-x", "x-", "a/b", "..", "a" * 41, "ns_1"])
def test_bad_namespace_names_are_refused(tmp_path: Path, name: str) -> None:
    assert not valid_namespace(name)
    with pytest.raises(ValueError):
        SqliteStores(tmp_path).open(name)
