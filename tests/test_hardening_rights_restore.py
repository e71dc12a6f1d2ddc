"""Issue 20 side effects: putting the shipped rights back leaves no overlay overriding keys/rights.json."""

from __future__ import annotations

import json
import shutil

import pytest

from license_server.rights import Rights, RightsBook, ShippedRights
from license_server.store import Store
from license_server.store_api import RIGHTS_DOCUMENT
from tests.admin_support import admin_settings, call
from tests.conftest import KEYS


def test_replacing_with_the_shipped_rules_removes_the_overlay(tmp_path):
    shipped = tmp_path / "rights.json"
    shutil.copy(KEYS / "rights.json", shipped)
    store = Store.memory()
    book = RightsBook(ShippedRights(shipped), store)
    original = book.current()
    doc = json.loads(original.model_dump_json())
    doc["tiers"]["ads"]["monthly_allowance"] = 1
    book.replace(Rights.model_validate(doc))
    assert store.document(RIGHTS_DOCUMENT) is not None and book.current().tiers["ads"].monthly_allowance == 1
    book.replace(original)
    assert store.document(RIGHTS_DOCUMENT) is None and book.current() == original


def test_the_shipped_file_is_looked_at_most_once_a_second(tmp_path, monkeypatch):
    """Issue 14: no stat per request; a change to keys/rights.json applies within a second."""
    import license_server.rights as rights_module

    shipped = tmp_path / "rights.json"
    shutil.copy(KEYS / "rights.json", shipped)
    now = [100.0]
    monkeypatch.setattr(rights_module, "monotonic", lambda: now[0])
    book = ShippedRights(shipped)
    assert book.current().tiers["premium"].device_cap == 6
    doc = json.loads(shipped.read_text())
    doc["tiers"]["premium"]["device_cap"] = 9
    shipped.write_text(json.dumps(doc))
    now[0] += 0.5
    assert book.current().tiers["premium"].device_cap == 6  # not looked at yet
    now[0] += 0.6
    assert book.current().tiers["premium"].device_cap == 9


@pytest.fixture
def settings(tmp_path):
    return admin_settings(tmp_path)


async def test_admin_put_of_the_saved_rules_leaves_no_overlay(client, store):
    _, _, saved = await call(client, "GET", "/admin/rights")
    doc = json.loads(json.dumps(saved))
    doc["tiers"]["ads"]["monthly_allowance"] = 1
    assert (await call(client, "PUT", "/admin/rights", doc))[0] == 200
    assert store.document(RIGHTS_DOCUMENT) is not None
    assert (await call(client, "PUT", "/admin/rights", saved))[0] == 200
    assert store.document(RIGHTS_DOCUMENT) is None
