"""Derived keys of the key service: deterministic, recorded, licensable through every dialect."""

from __future__ import annotations

import json
from pathlib import Path

from license_server import derived_keys
from license_server.core.model import LicenseKind
from license_server.derived_keys import DerivationIndex, content_id_text, derive
from license_server.errors import ERROR_CODE_HEADER
from license_server.http import KEYRING
from license_server.store_api import RIGHTS_DOCUMENT
from tests.conftest import KEYS, tracks

SEED = derived_keys.default_seed()
CONTENT = "keyserver-title"


def index_of(client) -> DerivationIndex:
    index = derived_keys.derivations_of(client.server.app[KEYRING])
    assert index is not None
    return index


def test_the_shipped_seed_is_the_public_test_seed():
    assert derived_keys.load_seed(KEYS) == SEED
    assert "PUBLIC TEST KEY SEED" in (KEYS / derived_keys.SEED_FILE).read_text(encoding="utf-8")


def test_derivation_is_deterministic_and_separates_every_input():
    one = derive(SEED, CONTENT, "SD")
    assert derive(SEED, CONTENT, "SD") == one and len(one.kid) == len(one.key) == 16
    others = [derive(SEED, CONTENT, "HD"), derive(SEED, CONTENT, "SD", 0), derive(SEED, CONTENT, "SD", 1),
              derive(SEED, CONTENT + "x", "SD"), derive(b"\x01" * 32, CONTENT, "SD")]
    assert len({k.kid for k in [one, *others]}) == 6 and len({k.key for k in [one, *others]}) == 6
    assert one.kid != one.key


def test_content_id_text():
    assert content_id_text(b"test content id".replace(b" ", b"-")) == "test-content-id"
    assert content_id_text(bytes.fromhex("7465737420636f6e74656e74206964")) == "7465737420636f6e74656e74206964"
    assert content_id_text(b"\x00\x01") == "0001"
    assert content_id_text(b"a/b") == "612f62"


def test_index_records_kids_only_and_replicas_see_each_other(tmp_path: Path):
    path = tmp_path / "key-derivations.jsonl"
    first = DerivationIndex(path, SEED)
    issued = first.issue(CONTENT, [("SD", 0), ("AUDIO", 0), ("SD", 0)])
    assert [k.track for k in issued] == ["SD", "AUDIO", "SD"]
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2 and all("key" not in row for row in rows)
    replica = DerivationIndex(path, SEED)  # another process on the same data directory
    title = replica.title(CONTENT)
    assert title is not None and {(t.kid, t.key) for t in title.tracks} == {(k.kid, k.key) for k in issued}
    assert replica.title_for_kid(issued[1].kid) == title
    assert replica.title("never-fetched") is None and replica.title_for_kid(b"\x00" * 16) is None
    with path.open("a", encoding="utf-8") as torn:
        torn.write('{"content_id": "x", "tra')
    first.issue(CONTENT, [("HD", 1)])
    assert len(replica.title(CONTENT).tracks) == 3


async def test_clear_key_serves_derived_keys_and_refuses_unfetched_ones(client):
    keys = index_of(client).issue(CONTENT, [("SD", None), ("AUDIO", None)])
    unfetched = derive(SEED, CONTENT, "HD")
    response = await client.post("/clearkey/license", json={
        "kids": [derived_keys_b64(k.kid) for k in keys], "type": "temporary"})
    assert response.status == 200, await response.text()
    answer = {k["kid"]: k["k"] for k in (await response.json())["keys"]}
    assert answer == {derived_keys_b64(k.kid): derived_keys_b64(k.key) for k in keys}
    refused = await client.post("/clearkey/license", json={"kids": [derived_keys_b64(unfetched.kid)],
                                                          "type": "temporary"})
    assert refused.status == 404 and refused.headers[ERROR_CODE_HEADER] == "KEY_NOT_FOUND"


async def test_widevine_serves_a_derived_title_by_content_id_with_catalog_policy(client, widevine, make_device):
    keys = index_of(client).issue(CONTENT, [(t, None) for t in derived_keys.TRACK_TYPES])
    status, _, loaded, _ = await widevine.acquire(make_device("L1"), CONTENT)
    assert status == 200, loaded
    l1 = make_device("L1")
    status, _, loaded, _ = await widevine.acquire(l1, CONTENT)
    assert sorted(tracks(loaded, l1)) == ["AUDIO", "HD", "SD", "UHD1", "UHD1"]  # UHD2 carries the UHD1 policy
    assert {info.kid for info in l1.tee.key_info(loaded.handle)} == {k.kid for k in keys}
    l3 = make_device("L3")
    status, _, loaded, _ = await widevine.acquire(l3, CONTENT)
    assert status == 200 and sorted(tracks(loaded, l3)) == ["AUDIO", "SD"]  # HD and up need hardware, as in the catalog


async def test_never_fetched_content_is_refused_as_before(client, widevine, make_device):
    status, headers, _, _ = await widevine.acquire(make_device("L1"), "never-fetched-title")
    assert status == 404 and headers[ERROR_CODE_HEADER] == "CONTENT_NOT_FOUND"


async def test_rights_layer_sees_a_derived_title_under_its_content_id(client, widevine, make_device, store):
    index_of(client).issue(CONTENT, [("SD", None)])
    store.update_document(RIGHTS_DOCUMENT, lambda _: json.dumps({"titles": {CONTENT: {"downloadable": False}}}))
    status, headers, _, _ = await widevine.acquire(make_device("L1"), CONTENT, LicenseKind.PERSISTENT)
    assert status == 403 and headers[ERROR_CODE_HEADER] == "OFFLINE_NOT_ALLOWED"


def derived_keys_b64(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_admin_rights_patch_a_derived_title_by_content_id(aiohttp_client, tmp_path, keyring, store, clock,
                                                               make_device):
    from license_server.app import create_app
    from tests.admin_support import admin_settings, call
    from tests.conftest import WidevineExchange

    settings = admin_settings(tmp_path)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    client = await aiohttp_client(create_app(settings, store=store, keyring=keyring, clock=clock))
    status, _, _ = await call(client, "PATCH", "/admin/rights/titles/never-fetched", {"downloadable": False})
    assert status == 404  # unknown content ids stay unknown to the rights layer too
    index_of(client).issue(CONTENT, [("SD", None)])
    status, _, rights = await call(client, "PATCH", f"/admin/rights/titles/{CONTENT}", {"downloadable": False})
    assert status == 200 and rights["titles"][CONTENT]["downloadable"] is False
    status, headers, _, _ = await WidevineExchange(client).acquire(make_device("L1"), CONTENT, LicenseKind.PERSISTENT)
    assert status == 403 and headers[ERROR_CODE_HEADER] == "OFFLINE_NOT_ALLOWED"
