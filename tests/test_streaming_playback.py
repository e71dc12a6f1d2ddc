"""`device-emulator play --stream`: a temporary license fetched now, the decision taken while
its session is open, and the dialect's end-of-playback report (PlayReady Secure Stop), kept
durably and re-sent by `sync` until the server records it. Real server process."""

from __future__ import annotations

import pytest

from device_emulator import lifecycle, transport
from device_emulator.device import Device
from license_server.store import Store
from tests.conftest import ServerProcess
from tests.device_cli import device_cli, device_json


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("streaming") / "data", "--test-clock")
    yield process
    process.stop()


@pytest.fixture
def device(tmp_path):
    path = tmp_path / "phone"
    device_json("create", str(path), "--json")
    return path


def stream(device, server, system: str, *extra: str, expect: int = 0) -> dict:
    return device_json("play", str(device), "--content", "demo-movie", "--stream", "--server", server.url,
                       "--system", system, "--json", *extra, expect=expect)


def secure_stops(server, license_id: str) -> list[dict]:
    store = Store.open(server.data_dir / "license-server.db")
    try:
        return [a for a in store.audit_trail(license_id=license_id) if a["event"] == "secure_stop"]
    finally:
        store.close()


def test_playready_streaming_ends_with_a_secure_stop_the_server_records(server, device):
    played = stream(device, server, "playready")
    assert played["decision"] == "play" and played["governing_clock"] == "license" and not played["offline"]
    report = played["end_of_playback_report"]
    assert report["status"] == "recorded" and len(secure_stops(server, report["license_id"])) == 1
    assert device_json("licenses", str(device), "--json") == []  # a temporary license is never stored
    assert device_json("status", str(device), "--json") == []  # nothing left pending


@pytest.mark.parametrize("system", ["widevine", "fairplay"])
def test_dialects_without_an_end_of_playback_report_just_play(server, device, system):
    played = stream(device, server, system)
    assert played["decision"] == "play" and played["end_of_playback_report"] is None


def test_a_lost_secure_stop_is_kept_and_sent_by_sync(server, device, monkeypatch):
    real_post = transport.post

    def secure_stop_lost(url, body, **kwargs):
        if "SecureStop" in (kwargs.get("headers") or {}).get("SOAPAction", ""):
            raise transport.TransportError("connection dropped")
        return real_post(url, body, **kwargs)

    monkeypatch.setattr(transport, "post", secure_stop_lost)
    dev = Device.load(device)
    decision, report = lifecycle.stream(dev, "demo-movie", server=server.url, system="playready")
    assert decision.decision == "play" and report["status"] == "pending"
    [row] = lifecycle.status(dev)
    assert (row["state"], row["license_id"], row["attempts"]) == ("report-pending", report["license_id"], 1)
    assert secure_stops(server, report["license_id"]) == []

    still_lost = lifecycle.sync(dev, server=server.url)
    assert still_lost.playback_reports == [] and still_lost.playback_reports_pending[0]["error"] == "connection dropped"
    monkeypatch.setattr(transport, "post", real_post)
    synced = device_json("sync", str(device), "--server", server.url, "--json")
    assert synced["playback_reports"] == [report["report_id"]] and synced["playback_reports_pending"] == []
    assert len(secure_stops(server, report["license_id"])) == 1
    assert lifecycle.status(dev) == []


def test_a_refused_stream_sends_no_report(server, device):
    refused = stream(device, server, "playready", "--license-url", "/playready/rightsmanager.asmx?cfg=(revoked:true)",
                     expect=3)
    assert refused["reason"] == "DEVICE_REVOKED" and refused["end_of_playback_report"] is None
    assert device_json("status", str(device), "--json") == []


def test_stream_needs_a_server_and_excludes_offline(device):
    assert device_cli("play", str(device), "--content", "demo-movie", "--stream").returncode == 2
    assert device_cli("play", str(device), "--content", "demo-movie", "--stream", "--offline",
                      "--server", "http://127.0.0.1:9").returncode == 2


def test_a_secure_stop_whose_answer_was_lost_is_recorded_once(server, device, monkeypatch):
    real_post = transport.post

    def answer_lost(url, body, **kwargs):
        reply = real_post(url, body, **kwargs)
        if "SecureStop" in (kwargs.get("headers") or {}).get("SOAPAction", ""):
            raise transport.TransportError("connection dropped after the request was sent")
        return reply

    monkeypatch.setattr(transport, "post", answer_lost)
    dev = Device.load(device)
    _, report = lifecycle.stream(dev, "demo-movie", server=server.url, system="playready")
    assert report["status"] == "pending" and len(secure_stops(server, report["license_id"])) == 1
    monkeypatch.setattr(transport, "post", real_post)
    synced = lifecycle.sync(dev, server=server.url)
    assert synced.playback_reports == [report["report_id"]] and synced.playback_reports_pending == []
    assert len(secure_stops(server, report["license_id"])) == 1  # acknowledged again, counted once
