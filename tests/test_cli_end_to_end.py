"""End to end through the real CLIs and a real server process."""

import json

from tests.conftest import cli_json, run_cli, write_revocations


def test_quickstart_temporary_and_persistent_licenses(server_process, tmp_path):
    server = server_process()
    l1, l3 = tmp_path / "phone", tmp_path / "laptop"
    created = cli_json("create", str(l1), "--level", "L1", "--json")
    assert created["level"] == "L1" and created["hardware_backed_keys"] is True
    cli_json("create", str(l3), "--level", "L3", "--model", "emulated-laptop-l3", "--json")

    temp = cli_json("acquire", str(l1), "--server", server.url, "--content", "demo-movie", "--json")
    assert temp["status"] == "granted" and temp["type"] == "temporary" and temp["key_set_id"] is None
    assert all("key" not in k for k in temp["keys"])  # L1 never prints key values

    persistent = cli_json("acquire", str(l1), "--server", server.url, "--content", "demo-movie",
                          "--type", "persistent", "--json")
    assert persistent["key_set_id"].startswith("ksid")
    assert [k["track"] for k in persistent["keys"]] == ["AUDIO", "SD", "HD", "UHD1"]
    assert persistent["platform_verification"] == "HARDWARE_VERIFIED"
    stored = cli_json("licenses", str(l1), "--json")
    assert [s["key_set_id"] for s in stored] == [persistent["key_set_id"]]

    l3_temp = cli_json("acquire", str(l3), "--server", server.url, "--content", "demo-movie", "--json")
    assert [k["track"] for k in l3_temp["keys"]] == ["AUDIO", "SD"]
    assert all(len(k["key"]) == 32 for k in l3_temp["keys"])  # software keys are reachable on L3

    refused = cli_json("acquire", str(l3), "--server", server.url, "--content", "demo-movie",
                       "--type", "persistent", "--json", expect=3)
    assert refused["status"] == "refused" and refused["error"]["code"] == "SECURITY_LEVEL_TOO_LOW"


def test_refusals_and_exit_codes(server_process, tmp_path):
    server = server_process()
    rooted = tmp_path / "rooted"
    cli_json("create", str(rooted), "--rooted", "--json")
    result = run_cli("acquire", str(rooted), "--server", server.url, "--content", "demo-movie")
    assert result.returncode == 3 and "DEVICE_ROOTED" in result.stdout

    good = tmp_path / "good"
    cli_json("create", str(good), "--json")
    result = run_cli("acquire", str(good), "--server", server.url, "--content", "stream-only", "--type", "persistent")
    assert result.returncode == 3 and "OFFLINE_NOT_ALLOWED" in result.stdout

    good_id = json.loads(run_cli("info", str(good), "--json").stdout)["device_id"]
    write_revocations(server.data_dir, {"devices": [good_id]})
    result = run_cli("acquire", str(good), "--server", server.url, "--content", "demo-movie")
    assert result.returncode == 3 and "DEVICE_REVOKED" in result.stdout

    result = run_cli("acquire", str(good), "--server", "http://127.0.0.1:9", "--content", "demo-movie")
    assert result.returncode == 1 and "cannot reach" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("acquire", str(tmp_path / "nothing"), "--server", server.url, "--content", "demo-movie")
    assert result.returncode == 2 and "no device" in result.stderr
    result = run_cli("create", str(tmp_path / "x"), "--level", "L3", "--model", "emulated-phone-l1")
    assert result.returncode == 2


def test_license_url_override_and_raw_challenge(server_process, tmp_path):
    server = server_process()
    device = tmp_path / "d"
    cli_json("create", str(device), "--json")
    result = run_cli("acquire", str(device), "--server", server.url, "--content", "demo-movie",
                     "--license-url", server.url + "/no/such/path")
    assert result.returncode != 0
    out = tmp_path / "challenge.bin"
    result = run_cli("challenge", str(device), "--content", "demo-movie", "--out", str(out))
    assert result.returncode == 0 and out.stat().st_size > 500


def test_every_command_has_help():
    device_commands = ["create", "info", "acquire", "challenge", "licenses", "export", "pssh"]
    for module, commands in (("device_emulator.cli", device_commands),
                             ("license_server.cli", ["serve", "keys", "bench"])):
        top = run_cli("--help", module=module)
        assert top.returncode == 0
        for command in commands:
            assert command in top.stdout, (module, command)
            sub = run_cli(command, "--help", module=module)
            assert sub.returncode == 0 and "Usage" in sub.stdout, (module, command)


def test_every_error_code_is_documented_in_the_readme():
    from license_server.errors import ErrorCode
    from tests.conftest import PROJECT

    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    assert [c.value for c in ErrorCode if f"`{c.value}`" not in readme] == []
