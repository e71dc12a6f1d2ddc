"""`device-emulator acquire --system playready` against a real `license-server serve` process."""

from __future__ import annotations

from tests.conftest import cli_json


def test_acquire_playready_persistent_and_refused(server_process, tmp_path):
    server = server_process()
    l1, l3 = tmp_path / "l1", tmp_path / "l3"
    cli_json("create", str(l1), "--level", "L1", "--json")
    cli_json("create", str(l3), "--level", "L3", "--json")
    granted = cli_json("acquire", str(l1), "--server", server.url, "--content", "demo-movie", "--system",
                       "playready", "--type", "persistent", "--license-url",
                       "/playready/rightsmanager.asmx?cfg=(persist:true,firstexp:60)", "--json")
    assert granted["status"] == "granted" and granted["system"] == "playready" and granted["type"] == "persistent"
    assert granted["policy"]["playback_duration"] == 60 and granted["key_set_id"]
    assert all("key" not in k for k in granted["keys"])  # L1: values stay in the TEE
    stored = cli_json("licenses", str(l1), "--json")
    assert [(r["system"], r["license_id"]) for r in stored] == [("playready", granted["license_id"])]
    temporary = cli_json("acquire", str(l3), "--server", server.url, "--content", "demo-movie", "--system",
                         "playready", "--json")
    assert {k["track"] for k in temporary["keys"]} == {"AUDIO", "SD"} and all("key" in k for k in temporary["keys"])
    refused = cli_json("acquire", str(l3), "--server", server.url, "--content", "demo-movie", "--system",
                       "playready", "--license-url", "/playready/rightsmanager.asmx?cfg=(sl:3000)", "--json",
                       expect=3)
    assert refused["error"]["code"] == "SECURITY_LEVEL_TOO_LOW"
