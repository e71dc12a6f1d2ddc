"""``device-emulator``: provision devices, acquire and inspect licenses.

Exit codes: 0 success (license granted), 3 refused by the server or the CDM
(the stable error code is printed), 2 usage error, 1 anything else (e.g. the
server is unreachable).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from device_emulator.cli_support import (
    EXIT_REFUSED,
    EXIT_USAGE,
    device_dir_arg,
    dialect_cdm,
    emit,
    entitlement_headers,
    entitlement_options,
    fail,
    json_option,
    load_device,
    not_applicable,
)
from device_emulator.device import Device, DeviceError, DeviceFlags
from device_emulator.errors import CdmError, TransportError
from device_emulator.license_store import LicenseStore
from device_emulator.namespaces import namespace_option
from license_server import __version__, dialects
from license_server.core.model import Hdcp, LicenseKind, SecurityLevel
from license_server.keyring import KeyringError, default_keys_dir, load_keyring

HDCP_CHOICES = {"none": Hdcp.NONE, "1": Hdcp.V1, "2": Hdcp.V2, "2.1": Hdcp.V2_1, "2.2": Hdcp.V2_2,
                "2.3": Hdcp.V2_3, "no-digital-output": Hdcp.NO_DIGITAL_OUTPUT}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="device-emulator")
def main() -> None:
    """Emulated DRM devices (L1 with an emulated TEE, or L3 software)."""


@main.command()
@device_dir_arg
@click.option("--level", type=click.Choice(["L1", "L3"]), default="L1", show_default=True,
              help="Security level; picks the default model of that level.")
@click.option("--model", help="Device model from keys/widevine/models.json (must match --level).")
@click.option("--rooted", is_flag=True, help="The device is rooted (root indicators present).")
@click.option("--unlocked-bootloader", is_flag=True, help="The bootloader is unlocked (self-signed boot).")
@click.option("--tampered-app", is_flag=True, help="The player app is repackaged (not the genuine build).")
@click.option("--hdcp", type=click.Choice(list(HDCP_CHOICES)), default="2.2", show_default=True,
              help="Highest HDCP version the device's outputs support.")
@click.option("--keys", "keys_dir", type=click.Path(path_type=Path), help="keys/ directory to provision from.")
@json_option
def create(device_dir: Path, level: str, model: str | None, rooted: bool, unlocked_bootloader: bool,
           tampered_app: bool, hdcp: str, keys_dir: Path | None, as_json: bool) -> None:
    """Provision a new device in DEVICE_DIR (keypair, certificate, state flags)."""
    try:
        keyring = load_keyring(keys_dir or default_keys_dir())
    except KeyringError as exc:
        fail(str(exc), EXIT_USAGE, as_json=as_json)
    wanted = SecurityLevel(level)
    if model is None:
        chosen = keyring.default_model(wanted)
    elif model not in keyring.models:
        fail(f"unknown model {model!r}; known: {', '.join(sorted(keyring.models))}", EXIT_USAGE, as_json=as_json)
    else:
        chosen = keyring.models[model]
        if chosen.security_level is not wanted:
            fail(f"model {model} is {chosen.security_level.value}, not {level}", EXIT_USAGE, as_json=as_json)
    flags = DeviceFlags(rooted=rooted, bootloader_unlocked=unlocked_bootloader, tampered_app=tampered_app)
    try:
        device = Device.create(device_dir, keyring, model=chosen, flags=flags, max_hdcp=HDCP_CHOICES[hdcp])
    except DeviceError as exc:
        fail(str(exc), EXIT_USAGE, as_json=as_json)
    except OSError as exc:
        fail(f"cannot create a device in {device_dir}: {exc.strerror or exc}", EXIT_USAGE, as_json=as_json)
    info = device.summary()
    emit(info, as_json, f"created {info['level']} device {info['device_id']} ({info['model']}) in {device_dir}")


@main.command()
@device_dir_arg
@json_option
def info(device_dir: Path, as_json: bool) -> None:
    """Show a device's identity and state."""
    summary = load_device(device_dir).summary()
    emit(summary, as_json, "\n".join(f"{k}: {v}" for k, v in summary.items()))


@main.command()
@namespace_option
@device_dir_arg
@click.option("--server", required=True, help="License server base URL, e.g. http://127.0.0.1:8080")
@click.option("--content", "content_id", required=True, help="Content id from the catalog, e.g. demo-movie.")
@click.option("--system", type=click.Choice(dialects.NAMES), default="widevine", show_default=True,
              help="DRM system (clearkey: W3C Clear Key, which has no device identity).")
@click.option("--type", "license_type", type=click.Choice(["temporary", "persistent"]), default="temporary",
              show_default=True)
@click.option("--license-url", help="Replaces the dialect's default path (query string included).")
@click.option("--no-privacy", is_flag=True, help="Send the client id in the clear (no service certificate).")
@entitlement_options
@json_option
def acquire(device_dir: Path, server: str, content_id: str, system: str, license_type: str,
            license_url: str | None, no_privacy: bool, token: str | None, region: str | None, as_json: bool) -> None:
    """Acquire a license; persistent licenses are stored on the device."""
    from device_emulator.acquire import acquire as run_acquire

    device = load_device(device_dir, as_json)
    try:
        result = run_acquire(device, server=server, content_id=content_id, kind=LicenseKind(license_type),
                             url=license_url, privacy=not no_privacy, system=system,
                             headers=entitlement_headers(token, region))
    except TransportError as exc:
        fail(str(exc), as_json=as_json)
    data = result.as_dict()
    if result.status == "granted":
        tracks = ",".join(k["track"] for k in result.keys)
        stored = f", stored as {result.key_set_id}" if result.key_set_id else ""
        notice = f"\nnote: {result.notice}" if result.notice else ""
        emit(data, as_json, f"granted {result.type} license {result.license_id} ({tracks}){stored}{notice}")
        return
    assert result.error is not None
    emit(data, as_json, f"refused: {result.error['code']}: {result.error['message']}")
    sys.exit(EXIT_REFUSED)


@main.command()
@namespace_option
@device_dir_arg
@click.option("--content", "content_id", required=True, help="Content id from the catalog.")
@click.option("--system", type=click.Choice(dialects.NAMES), default="widevine", show_default=True,
              help="DRM system: the file is its raw challenge (protobuf, SPC, SOAP XML, Clear Key JSON).")
@click.option("--type", "license_type", type=click.Choice(["temporary", "persistent"]), default="temporary",
              show_default=True)
@click.option("--server", help="Fetch what the first challenge needs (FairPlay's application certificate, "
              "Widevine's service certificate); without it cached certificates are used.")
@click.option("--no-privacy", is_flag=True, help="Widevine: send the client id in the clear.")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="File to write the raw challenge to.")
@entitlement_options
@json_option
def challenge(device_dir: Path, content_id: str, system: str, license_type: str, server: str | None,
              no_privacy: bool, out: Path, token: str | None, region: str | None, as_json: bool) -> None:
    """Write a signed challenge to a file without sending it: POST the file as is (curl --data-binary)
    with the content type printed (fixtures, load tools)."""
    from device_emulator.acquire import challenge as build_challenge
    from device_emulator.acquire import license_url

    device = load_device(device_dir, as_json)
    try:
        outgoing = build_challenge(device, system=system, content_id=content_id, kind=LicenseKind(license_type),
                                   server=server, privacy=not no_privacy, headers=entitlement_headers(token, region))
    except CdmError as exc:
        usage = exc.code == "NO_APP_CERTIFICATE"  # nothing cached and no --server to fetch it from
        message = exc.message + ("; pass --server to fetch it" if usage else "")
        emit({"system": system, "error": {"code": exc.code, "message": message}}, as_json,
             f"{'error' if usage else 'refused'}: {exc.code}: {message}")
        sys.exit(EXIT_USAGE if usage else EXIT_REFUSED)
    except TransportError as exc:
        fail(str(exc), as_json=as_json)
    out.write_bytes(outgoing.body)
    path = dialects.dialect(system).license_path
    data = {"system": system, "out": str(out), "bytes": len(outgoing.body), "license_path": path,
            "url": license_url(server, system, None) if server else None,
            "content_type": outgoing.content_type, "headers": outgoing.headers}
    extra = "".join(f" -H '{name}: {value}'" for name, value in outgoing.headers.items())
    notice = "" if dialect_cdm(system).device_identity else \
        "\nnote: Clear Key has no device identity: the request names key ids only (no certificate, no signature)"
    emit(data, as_json, f"wrote {len(outgoing.body)}-byte {system} challenge to {out}\n"
         f"post it with: curl --data-binary @{out} -H 'Content-Type: {outgoing.content_type}'{extra} "
         f"SERVER{path}{notice}")


@main.command()
@device_dir_arg
@json_option
def licenses(device_dir: Path, as_json: bool) -> None:
    """List the licenses stored on the device."""
    device = load_device(device_dir)
    store = LicenseStore(device.license_db_path)
    try:
        rows = [lic.public() for lic in store.all()]
    finally:
        store.close()
    lines = [f"{r['key_set_id']}  {r.get('license_id') or '-'}  {r['system']:9} {r['content_id']:14} "
             f"{r['type']:10} {r['state']:8} {','.join(k['track'] for k in r['keys'])}" for r in rows]
    emit(rows, as_json, "\n".join(lines) or "no stored licenses")


@main.command()
@namespace_option
@device_dir_arg
@click.option("--server", required=True, help="License server / media origin base URL, e.g. http://127.0.0.1:8080")
@click.option("--content", "content_id", required=True, help="Content id from the catalog, e.g. demo-movie.")
@click.option("--quality", type=click.Choice(["standard", "high"]), default="standard", show_default=True,
              help="Quality rung: standard = AUDIO+SD, high = AUDIO+HD.")
@click.option("--scheme", type=click.Choice(["cenc", "cbcs"]), default="cenc", show_default=True,
              help="Which packaging of the title to download.")
@click.option("--system", type=click.Choice(dialects.NAMES), default="widevine",
              show_default=True, help="DRM system of the persistent license (not clearkey: a download needs a "
              "device the server knows, and Clear Key has no device identity).")
@click.option("--license-url", help="Replaces the dialect's default license path (query string included, e.g. "
              "a cfg= policy).")
@click.option("--tier", default=None, help="Account tier sent in development mode [server default: premium].")
@click.option("--account", default=None, help="Account name sent in development mode.")
@click.option("--new-license", is_flag=True, help="Acquire a new persistent license even if the device holds a valid "
              "one for the title (by default it is reused: two licenses would count twice against caps).")
@click.option("--interrupt-after", type=click.IntRange(min=0), default=None, metavar="BYTES",
              help="TESTING: drop the transfer after BYTES media bytes (run again to resume).")
@entitlement_options
@json_option
def download(device_dir: Path, server: str, content_id: str, quality: str, scheme: str, system: str,
             license_url: str | None, tier: str | None, account: str | None, new_license: bool,
             interrupt_after: int | None, token: str | None, region: str | None, as_json: bool) -> None:
    """Download a title for offline play: a persistent license first, then the media (resumable)."""
    from device_emulator.download_cli import run_download

    if not dialect_cdm(system).device_identity:
        not_applicable("download", system, "a download needs a device the server knows; Clear Key has no device "
                       "identity (acquire --type persistent stores a Clear Key license)", as_json)
    run_download(load_device(device_dir, as_json), server=server, content_id=content_id, quality=quality, scheme=scheme,
                 tier=tier, account=account, interrupt_after=interrupt_after, as_json=as_json,
                 headers=entitlement_headers(token, region), system=system, license_url=license_url,
                 new_license=new_license)


from device_emulator import cli_offline  # noqa: E402 - registers play/status/clock/remove/sync/renew

cli_offline.register(main)

from device_emulator import cli_interop  # noqa: E402 - registers export and pssh

cli_interop.register(main)

from device_emulator import bench_decrypt  # noqa: E402 - registers bench-decrypt

bench_decrypt.register(main)

if __name__ == "__main__":  # pragma: no cover
    main()
