"""Admin API, rights and catalog: read, replace, patch a title; the next license follows."""

from __future__ import annotations

import json

import pytest

from license_server.core.model import LicenseKind
from license_server.errors import ERROR_CODE_HEADER
from license_server.store_api import RIGHTS_DOCUMENT
from tests.admin_support import admin_settings, call
from tests.test_openapi import assert_matches


@pytest.fixture
def settings(tmp_path):
    return admin_settings(tmp_path)


@pytest.fixture
async def document(client):
    return await (await client.get("/openapi.json")).json()


async def test_read_rights_and_catalog_without_keys(client, document, keyring) -> None:
    status, _, rights = await call(client, "GET", "/admin/rights")
    assert status == 200 and rights["tiers"]["premium"]["device_cap"] == 6
    assert rights["titles"]["stream-only"]["downloadable"] is False
    assert_matches(document, "GET", "/admin/rights", 200, rights)
    status, _, catalog = await call(client, "GET", "/admin/catalog")
    assert status == 200 and catalog["count"] == len(keyring.catalog.titles)
    assert_matches(document, "GET", "/admin/catalog", 200, catalog)
    text = json.dumps(catalog)
    for title in keyring.catalog.titles.values():
        for entry in title.tracks:
            assert entry.key.hex() not in text  # content keys never leave through the API


async def test_patch_a_title_then_the_next_license_follows(client, widevine, make_device, store,
                                                           document) -> None:
    status, _, _, _ = await widevine.acquire(make_device("L1"), "demo-episode", LicenseKind.PERSISTENT)
    assert status == 200
    status, _, rights = await call(client, "PATCH", "/admin/rights/titles/demo-episode",
                                   {"downloadable": False})
    assert status == 200 and rights["titles"]["demo-episode"]["downloadable"] is False
    assert_matches(document, "PATCH", "/admin/rights/titles/{content_id}", 200, rights)
    status, headers, _, _ = await widevine.acquire(make_device("L1"), "demo-episode", LicenseKind.PERSISTENT)
    assert (status, headers[ERROR_CODE_HEADER]) == (403, "OFFLINE_NOT_ALLOWED")
    persisted = json.loads(store.document(RIGHTS_DOCUMENT) or "")  # the namespace's overlay
    assert persisted["titles"]["demo-episode"]["downloadable"] is False
    assert persisted["titles"]["stream-only"]["downloadable"] is False  # the rest is kept


async def test_replace_rights_changes_the_caps(client, widevine, make_device, document) -> None:
    _, _, rights = await call(client, "GET", "/admin/rights")
    rights["max_active_downloads_per_device"] = 1
    status, _, stored = await call(client, "PUT", "/admin/rights", rights)
    assert status == 200 and stored["max_active_downloads_per_device"] == 1
    assert_matches(document, "PUT", "/admin/rights", 200, stored)
    device = make_device("L1")
    assert (await widevine.acquire(device, kind=LicenseKind.PERSISTENT))[0] == 200
    status, headers, _, _ = await widevine.acquire(device, kind=LicenseKind.PERSISTENT)
    assert (status, headers[ERROR_CODE_HEADER]) == (403, "DOWNLOAD_LIMIT_REACHED")


@pytest.mark.parametrize("method, path, body, status, code", [
    ("PUT", "/admin/rights", {"tiers": {"premium": {"device_cap": -1}}}, 400, "ADMIN_REQUEST_INVALID"),
    ("PUT", "/admin/rights", {"surprise": True}, 400, "ADMIN_REQUEST_INVALID"),
    ("PUT", "/admin/rights", {"titles": {"no-such-title": {}}}, 404, "ADMIN_NOT_FOUND"),
    ("PATCH", "/admin/rights/titles/demo-movie", {"tracks": {"8K": {"min_level": "L1"}}}, 400,
     "ADMIN_REQUEST_INVALID"),
    ("PATCH", "/admin/rights/titles/demo-movie", {"rental": "soon"}, 400, "ADMIN_REQUEST_INVALID"),
    ("PATCH", "/admin/rights/titles/nope", {"downloadable": False}, 404, "ADMIN_NOT_FOUND"),
    ("PUT", "/admin/rights", "not json", 400, "ADMIN_REQUEST_INVALID"),
])
async def test_bad_rights_changes_are_refused_and_change_nothing(client, store, method, path, body, status,
                                                                 code) -> None:
    _, _, before = await call(client, "GET", "/admin/rights")
    got, headers, _ = await call(client, method, path, body)
    assert (got, headers[ERROR_CODE_HEADER]) == (status, code)
    assert (await call(client, "GET", "/admin/rights"))[2] == before
    assert store.document(RIGHTS_DOCUMENT) is None
