"""``device-emulator acquire --system fairplay`` through the real CLIs and a real server process."""

from tests.conftest import cli_json


def test_cli_acquire_fairplay_streaming_persistent_and_refused(server_process, tmp_path):
    server = server_process()
    phone, rooted = tmp_path / "phone", tmp_path / "rooted"
    cli_json("create", str(phone), "--level", "L1", "--json")
    cli_json("create", str(rooted), "--level", "L1", "--rooted", "--json")

    temp = cli_json("acquire", str(phone), "--server", server.url, "--content", "demo-movie",
                    "--system", "fairplay", "--json")
    assert temp["status"] == "granted" and temp["system"] == "fairplay" and temp["key_set_id"] is None
    assert [k["track"] for k in temp["keys"]] == ["AUDIO", "SD", "HD", "UHD1"]
    assert (phone / "trust" / "fairplay_app.cert").exists()

    offline = cli_json("acquire", str(phone), "--server", server.url, "--content", "demo-episode",
                       "--system", "fairplay", "--type", "persistent", "--json")
    assert offline["type"] == "persistent" and offline["key_set_id"].startswith("ksid")
    assert offline["policy"]["rental_duration"] == 30 * 86400
    stored = cli_json("licenses", str(phone), "--json")
    assert [(s["system"], s["license_id"]) for s in stored] == [("fairplay", offline["license_id"])]

    lease = cli_json("acquire", str(phone), "--server", server.url, "--content", "demo-episode",
                     "--system", "fairplay", "--type", "persistent", "--json",
                     "--license-url", "/fairplay/license?cfg=(lease:600)", expect=3)
    assert lease["error"]["code"] == "LEASE_WITH_OFFLINE"
    refused = cli_json("acquire", str(rooted), "--server", server.url, "--content", "demo-movie",
                       "--system", "fairplay", "--json", expect=3)
    assert refused["status"] == "refused" and refused["error"]["code"] == "DEVICE_ROOTED"
