"""``license-server package``: encrypted DASH + HLS from a clear MP4, or a sample clip."""

from __future__ import annotations

import json
from pathlib import Path

import click

from license_server.keyring import KeyringError, default_keys_dir, load_keyring


@click.command("package")
@click.argument("source", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--content", "content_id", default=None, help="Catalog content id whose KIDs and keys to use.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output directory (OUT/<content>/<scheme>/...), or the .mp4 file with --sample.")
@click.option("--scheme", default="cenc", show_default=True, type=click.Choice(["cenc", "cbcs"]),
              help="Common Encryption scheme: cenc (AES-CTR) or cbcs (AES-CBC 1:9 pattern, FairPlay-compatible).")
@click.option("--license-server", "license_url", default=None,
              help="Clear Key license URL written into the MPD (dashif:Laurl / clearkey:Laurl), "
                   "e.g. http://127.0.0.1:8080/clearkey/license.")
@click.option("--sample", is_flag=True, help="Write a short clear test clip (640x360 H.264 + AAC) to --out instead.")
@click.option("--duration", default=10, show_default=True, type=click.IntRange(2, 600),
              help="Length of the --sample clip in seconds.")
@click.option("--keys", "keys_dir", default=None, type=click.Path(path_type=Path), help="keys/ directory.")
@click.option("--key-server", "key_server_url", default=None,
              help="Fetch the keys from a Widevine common-encryption key API instead of the catalog, e.g. "
                   "http://127.0.0.1:8080/widevine/cenc/getcontentkey/widevine_test (signed as widevine_test).")
@click.option("--crypto-period", default=None, type=click.IntRange(1, 86400),
              help="With --key-server: key rotation, one key per this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print package.json instead of a summary.")
def package(source: Path | None, content_id: str | None, out: Path, scheme: str, license_url: str | None,
            sample: bool, duration: int, keys_dir: Path | None, key_server_url: str | None,
            crypto_period: int | None, as_json: bool) -> None:
    """Encrypt SOURCE (a clear MP4) into DASH and HLS with the catalog keys of --content,
    or with keys Shaka Packager fetches from a key server (--key-server, --crypto-period).

    Renditions AUDIO, SD (640x360) and HD (1280x720) are encoded by ffmpeg and
    encrypted by Shaka Packager with PSSH boxes for Clear Key (common system),
    Widevine and PlayReady, DASH-IF Clear Key signalling in the MPD, and
    FairPlay skd:// key URIs in HLS for cbcs.
    """
    from license_server import packaging

    try:
        if sample:
            if source is not None or content_id is not None:
                raise click.UsageError("--sample takes no SOURCE and no --content")
            written = packaging.make_sample(out, seconds=duration)
            click.echo(f"wrote clear sample {written} ({duration} s, 640x360 H.264 + AAC)")
            return
        if source is None or content_id is None:
            raise click.UsageError("SOURCE and --content are required (or use --sample --out FILE.mp4)")
        if crypto_period is not None and key_server_url is None:
            raise click.UsageError("--crypto-period needs --key-server")
        if key_server_url is not None:
            from license_server.derived_keys import content_id_text

            if content_id_text(content_id.encode("utf-8")) != content_id:
                raise click.UsageError("with --key-server, --content must be printable ASCII without spaces or '/'")
            key_server = packaging.KeyServer(key_server_url, content_id, crypto_period=crypto_period)
            result = packaging.package(source, content_id=content_id, out=out, scheme=scheme, keyring=None,
                                       license_url=license_url, key_server=key_server)
        else:
            try:
                keyring = load_keyring(keys_dir or default_keys_dir())
            except KeyringError as exc:
                raise click.ClickException(str(exc)) from exc
            result = packaging.package(source, content_id=content_id, out=out, scheme=scheme, keyring=keyring,
                                       license_url=license_url)
    except (packaging.ToolMissing, packaging.PackagingError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result.manifest, indent=2))
        return
    click.echo(f"packaged {content_id} ({scheme}) into {result.directory}")
    for rendition in result.manifest["renditions"]:
        total = sum(rendition["sizes"].values())
        rotated = f" (+{len(rendition['kids']) - 1} rotated)" if rendition.get("kids") else ""
        click.echo(f"  {rendition['track']:<5} kid {rendition['kid']}{rotated}  {len(rendition['segments'])} segments  "
                   f"{rendition['bandwidth'] / 1000:.0f} kbit/s  {total / 1e6:.2f} MB")
