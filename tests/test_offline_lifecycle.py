"""The offline lifecycle end to end: real server (test clock), real CLIs, time travel."""

import json
import urllib.request

import pytest

from device_emulator import lifecycle, transport
from device_emulator.device import Device
from device_emulator.license_store import LicenseStore
from license_server.store import Store
from tests.conftest import cli_json, run_cli

CFG_RENEW = "/widevine/license?cfg=(persist:true,rental:2592000,playback:172800,renew:true,renewdelay:3600)"


def move_server_clock(server, advance: str) -> None:
    request = urllib.request.Request(server.url + "/admin/clock", data=json.dumps({"advance": advance}).encode(),
                                     method="POST", headers={"Content-Type": "application/json",
                                                             **server.admin_headers})
    urllib.request.urlopen(request).read()


def download(server, device, license_url=None) -> dict:
    args = ["acquire", str(device), "--server", server.url, "--content", "demo-movie", "--type", "persistent",
            "--json"]
    if license_url:
        args += ["--license-url", license_url]
    return cli_json(*args)


def play(device, expect=0) -> dict:
    return cli_json("play", str(device), "--content", "demo-movie", "--offline", "--json", expect=expect)


def advance(device, amount: str) -> None:
    assert run_cli("clock", str(device), "--advance", amount).returncode == 0


@pytest.fixture
def server(server_process):
    return server_process("--test-clock")


@pytest.fixture
def device(tmp_path):
    path = tmp_path / "phone"
    cli_json("create", str(path), "--json")
    return path


def test_never_played_plays_on_day_30_and_is_refused_on_day_31(server, device):
    download(server, device, "/widevine/license?cfg=(rental:2592000,playback:172800)")
    advance(device, "1m")
    status = cli_json("status", str(device), "--json")[0]
    assert status["message"] == "Available for 29 more days" and status["governing_clock"] == "storage"
    advance(device, "29d")
    advance(device, "-1m")
    assert run_cli("status", str(device)).returncode == 0  # status never starts the playback clock
    assert cli_json("status", str(device), "--json")[0]["first_played_at"] is None
    advance(device, "23h")
    assert play(device)["decision"] == "play"
    advance(device, "1h")
    refused = play(device, expect=3)
    assert refused["decision"] == "refused" and refused["governing_clock"] == "storage"
    assert refused["reason"] == "STORAGE_WINDOW_EXPIRED" and set(refused["key_statuses"].values()) == {"expired"}


def test_first_play_on_day_20_ends_after_day_22_eight_days_early(server, device):
    download(server, device)
    advance(device, "18d")
    advance(device, "23h")
    before = cli_json("status", str(device), "--json")[0]
    assert before["message"] == "Available for 11 more days"
    advance(device, "1h")
    started = play(device)
    assert started["governing_clock"] == "playback" and started["message"] == "Expires in 48 hours"
    assert set(started["key_statuses"].values()) == {"usable"}
    advance(device, "30m")
    assert play(device)["message"] == "Expires in 47 hours"  # the first play is not restarted
    advance(device, "46h")
    assert play(device)["message"] == "Expires in 1 hour"
    advance(device, "90m")
    refused = play(device, expect=3)
    assert refused["reason"] == "PLAYBACK_WINDOW_EXPIRED" and refused["governing_clock"] == "playback"
    assert refused["expires_at"] - refused["first_played_at"] == 48 * 3600
    clocks = cli_json("status", str(device), "--json")[0]
    assert clocks["playback_window_ends"] < clocks["storage_window_ends"]  # eight days before storage ends


def test_first_play_survives_a_crash_right_after(server, device):
    download(server, device)
    first = play(device)["first_played_at"]
    store = LicenseStore(Device.load(device).license_db_path)  # a new process would see exactly this
    assert store.all()[0].first_played_at == first
    store.close()


def test_clock_rollback_refuses_until_sync_and_extends_nothing(server, device):
    download(server, device)
    first = play(device)["first_played_at"]
    advance(device, "-2d")
    refused = play(device, expect=3)
    assert refused["reason"] == "CLOCK_ROLLBACK" and set(refused["key_statuses"].values()) == {"status-pending"}
    advance(device, "2d")
    assert play(device, expect=3)["reason"] == "CLOCK_ROLLBACK"  # stays refused until a sync
    cli_json("sync", str(device), "--server", server.url, "--json")
    resumed = play(device)
    assert resumed["first_played_at"] == first and resumed["governing_clock"] == "playback"
    advance(device, "1d")  # forward is allowed and moves towards expiry
    assert play(device)["message"].startswith("Expires in 2")


def test_removal_offline_then_sync_releases_on_the_server(server, device):
    granted = download(server, device)
    result = run_cli("remove", str(device), "--content", "demo-movie", "--offline")
    assert result.returncode == 0 and "pending" in result.stdout
    refused = play(device, expect=3)
    assert refused["reason"] == "LICENSE_RELEASED" and set(refused["key_statuses"].values()) == {"released"}
    assert cli_json("status", str(device), "--json")[0]["state"] == "removed"  # survives a restart

    unreachable = run_cli("sync", str(device), "--server", "http://127.0.0.1:9")
    assert unreachable.returncode == 1
    synced = cli_json("sync", str(device), "--server", server.url, "--json")
    assert synced["released"] == [granted["key_set_id"]]
    assert cli_json("licenses", str(device), "--json") == []
    assert play(device, expect=3)["reason"] == "NO_LICENSE"
    store = Store.open(server.data_dir / "license-server.db")
    record = store.license(granted["license_id"])
    assert record.state == "released" and record.released_at is not None
    store.close()


def test_lost_acknowledgement_leads_to_a_resend(server, device, monkeypatch):
    granted = download(server, device)
    dev = Device.load(device)
    lifecycle.remove(dev, "demo-movie")
    real_post = transport.post

    def post_and_lose_the_answer(url, body, **kwargs):
        real_post(url, body, **kwargs)  # the server releases ...
        raise transport.TransportError("connection dropped before the acknowledgement arrived")

    monkeypatch.setattr(transport, "post", post_and_lose_the_answer)
    first = lifecycle.sync(dev, server=server.url, time=False)
    assert first.released == [] and first.release_pending[0]["key_set_id"] == granted["key_set_id"]
    monkeypatch.setattr(transport, "post", real_post)
    second = lifecycle.sync(dev, server=server.url, time=False)  # ... and acknowledges the resend
    assert second.released == [granted["key_set_id"]]
    store = Store.open(server.data_dir / "license-server.db")
    releases = [a for a in store.audit_trail(license_id=granted["license_id"]) if a["event"] == "release"]
    assert len(releases) == 1  # the repeated release is not double-counted
    store.close()


def test_renewal_extends_then_refused_after_release(server, device):
    download(server, device, CFG_RENEW)
    before = cli_json("status", str(device), "--json")[0]
    advance(device, "2h")
    move_server_clock(server, "2h")
    renewed = cli_json("renew", str(device), "--content", "demo-movie", "--server", server.url, "--json")
    assert renewed["applied"] and renewed["version"] == 2
    status = cli_json("status", str(device), "--json")[0]
    assert status["version"] == 2 and status["storage_window_ends"] > before["storage_window_ends"]
    run_cli("remove", str(device), "--content", "demo-movie", "--server", server.url)
    result = run_cli("renew", str(device), "--content", "demo-movie", "--server", server.url)
    assert result.returncode == 3 and "NO_LICENSE" in result.stdout


def test_renewal_refused_after_expiry_and_when_not_allowed(server, device, tmp_path):
    download(server, device, CFG_RENEW)
    other = tmp_path / "tablet"
    cli_json("create", str(other), "--json")
    download(server, other)  # default policy: no renewal
    result = run_cli("renew", str(other), "--content", "demo-movie", "--server", server.url)
    assert result.returncode == 3 and "RENEWAL_NOT_ALLOWED" in result.stdout

    advance(device, "31d")
    move_server_clock(server, "31d")
    result = run_cli("renew", str(device), "--content", "demo-movie", "--server", server.url, "--json")
    assert result.returncode == 3 and json.loads(result.stdout)["error"]["code"] == "LICENSE_EXPIRED"


def test_stale_renewal_is_ignored(server, device, monkeypatch):
    download(server, device, CFG_RENEW)
    dev = Device.load(device)
    captured = []
    real_post = transport.post

    def capture(url, body, **kwargs):
        reply = real_post(url, body, **kwargs)
        captured.append(reply.body)
        return reply

    monkeypatch.setattr(transport, "post", capture)
    assert lifecycle.renew(dev, "demo-movie", server=server.url)["version"] == 2
    assert lifecycle.renew(dev, "demo-movie", server=server.url)["version"] == 3
    store = LicenseStore(dev.license_db_path)
    lic = store.all()[0]
    from device_emulator.cdm.widevine import WidevineCdm

    loaded = WidevineCdm(dev).load_stored(lic)
    outcome = lifecycle.apply_renewal_reply(dev, store, lic, loaded, captured[0])  # the version-2 answer again
    assert outcome == {"applied": False, "reason": "STALE_RENEWAL", "version": 3, "offered_version": 2}
    assert store.all()[0].version == 3
    store.close()


def test_cfg_override_errors_name_the_key_over_http(server, device):
    result = run_cli("acquire", str(device), "--server", server.url, "--content", "demo-movie",
                     "--license-url", "/widevine/license?cfg=(rental:soon)", "--json")
    assert result.returncode == 3
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "INVALID_POLICY_OVERRIDE" and "'rental'" in error["message"]


def test_cfg_short_windows_drive_the_device(server, device):
    download(server, device, "/widevine/license?cfg=(rental:7200,playback:600)")
    assert play(device)["message"] == "Expires in 10 minutes"
    advance(device, "11m")
    assert play(device, expect=3)["reason"] == "PLAYBACK_WINDOW_EXPIRED"


def test_admin_clock_exists_only_with_test_clock(server_process):
    plain = server_process()
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(urllib.request.Request(plain.url + "/admin/clock", headers=plain.admin_headers))
    assert caught.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as caught:  # and without the token nothing is revealed
        urllib.request.urlopen(plain.url + "/admin/clock")
    assert caught.value.code == 401


def test_replayed_renewal_is_refused_and_does_not_restart_the_clock(server, device, monkeypatch):
    """Issue 20 defect 4: a renewal sent again is REPLAYED_CHALLENGE, and the license clock stays put."""
    granted = download(server, device, CFG_RENEW)
    advance(device, "2h")
    move_server_clock(server, "2h")
    sent = []
    real_post = transport.post

    def capture(url, body, **kwargs):
        sent.append((url, body, kwargs))
        return real_post(url, body, **kwargs)

    monkeypatch.setattr(transport, "post", capture)
    assert lifecycle.renew(Device.load(device), "demo-movie", server=server.url)["version"] == 2
    url, body, kwargs = sent[-1]
    store = Store.open(server.data_dir / "license-server.db")
    start = store.license(granted["license_id"]).license_start
    move_server_clock(server, "10s")
    for _ in range(2):
        reply = real_post(url, body, **kwargs)
        assert reply.status >= 400 and reply.error_code == "REPLAYED_CHALLENGE"
    record = store.license(granted["license_id"])
    assert record.license_start == start and record.version == 2
    store.close()
