"""`device-emulator acquire --system playready` against a real `license-server serve` process."""

from __future__ import annotations

from tests.conftest import cli_json, run_cli


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


def _prd_parts(data: bytes) -> tuple[int, bytes, bytes, bytes]:
    """Our own reading of the pyplayready .prd v2 layout (independent of device_emulator.export)."""
    assert data[:3] == b"PRD"
    length = int.from_bytes(data[4:8], "big")
    chain = data[8:8 + length]
    rest = data[8 + length:]
    assert len(rest) == 192
    return data[3], chain, rest[:96], rest[96:]


def test_export_prd_writes_the_chain_and_both_keys_and_warns_for_l1(tmp_path):
    from license_server.crypto import elgamal
    from license_server.protocols.playready import certificates

    for level in ("L1", "L3"):
        device = tmp_path / level
        cli_json("create", str(device), "--level", level, "--json")
        out = tmp_path / f"{level}.prd"
        result = run_cli("export", str(device), "--format", "prd", "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert ("out of the emulated TEE" in result.stderr) is (level == "L1")
        version, chain, encryption, signing = _prd_parts(out.read_bytes())
        assert version == 2 and chain == (device / "playready" / "certificate.bin").read_bytes()
        leaf = certificates.decode_chain(chain)[0]
        assert leaf.key_for(certificates.KeyUsage.SIGN) == signing[32:]
        assert leaf.key_for(certificates.KeyUsage.ENCRYPT_KEY) == encryption[32:]
        for key in (encryption, signing):  # each private value matches its public half
            assert elgamal.public_point(int.from_bytes(key[:32], "big")) == key[32:]
    result = run_cli("export", str(tmp_path / "L3"), "--format", "nope", "--out", str(tmp_path / "x"))
    assert result.returncode == 2
