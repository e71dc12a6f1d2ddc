"""FairPlay-style offline keys and secure invalidation, through the device emulator's client code."""

import asyncio
import functools
import json

import pytest

from device_emulator.acquire import acquire
from device_emulator.acquire_fairplay import acquire_fairplay, report_deleted
from device_emulator.cdm.fairplay import FairPlayCdm
from device_emulator.cdm.widevine import CdmError
from device_emulator.license_store import LicenseStore
from license_server.core.model import Hdcp, LicenseKind
from license_server.errors import ERROR_CODE_HEADER
from license_server.protocols.fairplay import fields
from tests.conftest import START

PERSISTENT = LicenseKind.PERSISTENT


async def blocking(func, *args, **kwargs):
    """Run the device's blocking HTTP client while the test server keeps serving."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(func, *args, **kwargs))


def server_url(client) -> str:
    return str(client.make_url("")).rstrip("/")


def stored(device):
    store = LicenseStore(device.license_db_path)
    try:
        return store.all()
    finally:
        store.close()


@pytest.mark.parametrize("shape", ["raw", "form", "json"])
async def test_acquire_stores_a_persistent_key_with_neutral_policy(client, make_device, store, shape):
    device = make_device("L1")
    result = await blocking(acquire_fairplay, device, server=server_url(client), content_id="demo-episode",
                            kind=PERSISTENT, shape=shape)
    assert result.status == "granted", result.error
    assert (device.directory / "trust" / "fairplay_app.cert").exists()
    assert all("key" not in k for k in result.keys)  # L1: content keys never reach the app
    [row] = stored(device)
    assert row.system == "fairplay" and row.license_id == result.license_id and row.kind == "persistent"
    assert row.policy["rental_duration"] == 30 * 86400 and row.policy["playback_duration"] == 48 * 3600
    assert row.policy["can_persist"] and row.license_start == START
    assert store.license(result.license_id).state == "issued"


async def test_dispatch_through_acquire_with_system_fairplay(client, make_device, keyring):
    device = make_device("L3", hdcp=Hdcp.V1)
    result = await blocking(acquire, device, server=server_url(client), content_id="demo-movie",
                            kind=LicenseKind.TEMPORARY, system="fairplay")
    assert result.status == "granted" and result.system == "fairplay"
    catalog = {t.kid.hex(): t.key.hex() for t in keyring.catalog.title("demo-movie").tracks}
    assert [k["track"] for k in result.keys] == ["AUDIO", "SD", "HD"]
    assert all(k["key"] == catalog[k["kid"]] for k in result.keys)  # L3 keys decrypt to the catalog's
    assert stored(device) == []


async def test_refusal_reaches_the_client_with_its_code(client, make_device):
    device = make_device("L1", rooted=True)
    result = await blocking(acquire_fairplay, device, server=server_url(client), content_id="demo-movie",
                            kind=PERSISTENT)
    assert result.status == "refused" and result.error["code"] == "DEVICE_ROOTED"


async def test_stored_offline_key_loads_offline_only_on_its_device(client, make_device):
    device, other = make_device("L1"), make_device("L1")
    await blocking(acquire_fairplay, device, server=server_url(client), content_id="demo-movie", kind=PERSISTENT)
    [row] = stored(device)
    loaded = FairPlayCdm(device).load_stored(row.wrapped_session_key, row.license_msg)
    assert loaded.license_id == row.license_id
    assert [i.track for i in device.tee.key_info(loaded.handle)] == ["AUDIO", "SD", "HD", "UHD1"]
    with pytest.raises(CdmError) as caught:
        FairPlayCdm(other).load_stored(row.wrapped_session_key, row.license_msg)
    assert caught.value.code == "LICENSE_NOT_BOUND"


async def test_secure_invalidation_marks_the_license_released(client, make_device, store, clock):
    device = make_device("L1")
    url = server_url(client)
    result = await blocking(acquire_fairplay, device, server=url, content_id="demo-movie", kind=PERSISTENT)
    ack = await blocking(report_deleted, device, server=url, license_ids=[result.license_id],
                         content_id="demo-movie", deleted_at=clock.now())
    assert ack.released == (result.license_id,) and ack.not_found == ()
    record = store.license(result.license_id)
    assert record.state == "released" and record.released_at == clock.now()
    again = await blocking(report_deleted, device, server=url, license_ids=[result.license_id],
                           content_id="demo-movie", deleted_at=clock.now(), shape="json")
    assert again.released == (result.license_id,)  # idempotent acknowledgement


async def test_invalidation_of_another_devices_license_changes_nothing(client, make_device, store, clock):
    owner, stranger = make_device("L1"), make_device("L1")
    url = server_url(client)
    result = await blocking(acquire_fairplay, owner, server=url, content_id="demo-movie", kind=PERSISTENT)
    unknown = "00" * 16
    ack = await blocking(report_deleted, stranger, server=url, license_ids=[result.license_id, unknown],
                         content_id="demo-movie", deleted_at=clock.now(), shape="form")
    assert ack.released == () and set(ack.not_found) == {result.license_id, unknown}
    assert store.license(result.license_id).state == "issued"


async def test_invalidation_from_a_rooted_device_is_refused(client, make_device, store, clock):
    device = make_device("L1")
    url = server_url(client)
    result = await blocking(acquire_fairplay, device, server=url, content_id="demo-movie", kind=PERSISTENT)
    device.record.flags.rooted = True
    with pytest.raises(CdmError) as caught:
        await blocking(report_deleted, device, server=url, license_ids=[result.license_id],
                       content_id="demo-movie", deleted_at=clock.now())
    assert caught.value.code == "DEVICE_ROOTED"
    assert store.license(result.license_id).state == "issued"


async def test_altered_invalidation_ack_is_rejected(fairplay, make_device, clock):
    device = make_device("L1")
    cdm = FairPlayCdm(device)
    status, _, loaded, _ = await fairplay.acquire(device, "demo-movie", PERSISTENT, cdm=cdm)
    record = fields.DestructionRecord((loaded.license_id,), "demo-movie", clock.now())
    pending = cdm.build_sync_spc(record)
    status, headers, body = await fairplay.post(pending.body, accept="application/octet-stream")
    assert status == 200
    tampered = bytearray(body)
    tampered[-20] ^= 0x80
    with pytest.raises(CdmError) as caught:
        cdm.process_sync_ack(pending, bytes(tampered))
    assert caught.value.code == "LICENSE_TAMPERED"


async def test_sync_spc_whose_ids_disagree_with_the_record_is_refused(fairplay, make_device, clock):
    device = make_device("L1")
    cdm = FairPlayCdm(device)
    await fairplay.certificate(cdm)
    record = fields.DestructionRecord(("11" * 16,), "demo-movie", clock.now())
    sync = fields.OfflineSync(fields.SyncFlag.SECURE_INVALIDATION, (bytes.fromhex("22" * 16),))
    from license_server.protocols.fairplay.tllv import Tag

    pending = cdm.build_spc("demo-movie", PERSISTENT, extra=[(Tag.OFFLINE_SYNC, sync.encode()),
                                                            (Tag.EMU_DESTRUCTION_RECORD, record.encode())])
    status, headers, body = await fairplay.post(pending.body)
    assert (status, headers[ERROR_CODE_HEADER]) == (400, "MALFORMED_CHALLENGE")
    assert "disagree" in json.loads(body)["message"]
