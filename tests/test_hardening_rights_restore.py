"""Issue 20 side effects: putting the shipped rights back leaves no data/rights.json overriding keys/rights.json."""

from __future__ import annotations

import json
import shutil

import pytest

from license_server.rights import Rights, RightsBook
from tests.admin_support import admin_settings, call
from tests.conftest import KEYS


def test_replacing_with_the_shipped_rules_removes_the_overlay(tmp_path):
    shipped = tmp_path / "rights.json"
    shutil.copy(KEYS / "rights.json", shipped)
    book = RightsBook(shipped, tmp_path / "data" / "rights.json")
    original = book.current()
    doc = json.loads(original.model_dump_json())
    doc["tiers"]["ads"]["monthly_allowance"] = 1
    book.replace(Rights.model_validate(doc))
    assert book.overlay.exists() and book.current().tiers["ads"].monthly_allowance == 1
    book.replace(original)
    assert not book.overlay.exists() and book.current() == original


@pytest.fixture
def settings(tmp_path):
    return admin_settings(tmp_path)


async def test_admin_put_of_the_saved_rules_leaves_no_file(client, settings):
    _, _, saved = await call(client, "GET", "/admin/rights")
    doc = json.loads(json.dumps(saved))
    doc["tiers"]["ads"]["monthly_allowance"] = 1
    assert (await call(client, "PUT", "/admin/rights", doc))[0] == 200
    assert (settings.data_dir / "rights.json").exists()
    assert (await call(client, "PUT", "/admin/rights", saved))[0] == 200
    assert not (settings.data_dir / "rights.json").exists()
