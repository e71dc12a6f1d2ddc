"""``license-server inspect FILE|-``: decode any of our DRM messages offline (text, or ``--json``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from license_server.clock import wall_clock_now


def render_text(document: dict[str, Any]) -> str:
    """The document as indented ``name: value`` lines."""
    lines = [document["summary"]]
    if document["recognised"]:
        lines.append(f"format: {document['format']}   dialect: {document['dialect'] or '-'}   "
                     f"input: {document['input']}")
    lines.extend(_lines(document["fields"], 1))
    if document.get("server_would"):
        lines.append("what the server would do:")
        lines.extend(_lines(document["server_would"], 1))
    lines.extend(f"note: {note}" for note in document["notes"])
    return "\n".join(lines)


def _lines(value: Any, depth: int) -> list[str]:
    pad = "  " * depth
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}{key}:")
                out.extend(_lines(item, depth + 1))
            else:
                out.append(f"{pad}{key}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)):
                out.append(f"{pad}-")
                out.extend(_lines(item, depth + 1))
            else:
                out.append(f"{pad}- {_scalar(item)}")
    return out


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if value == [] or value == {}:
        return "(none)"
    return str(value)


@click.command("inspect")
@click.argument("source", type=click.Path(allow_dash=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the stable JSON document (docs/console.md).")
@click.option("--keys", "keys_dir", default=None, type=click.Path(path_type=Path, file_okay=False),
              help="keys/ directory whose keys open encrypted parts [default: the project's test keys].")
@click.option("--no-keys", is_flag=True, help="Decode without any key material.")
def inspect_command(source: Path, as_json: bool, keys_dir: Path | None, no_keys: bool) -> None:
    """Decode a DRM message from FILE (or - for stdin): raw bytes, base64, hex or text.

    Recognises Widevine-style SignedMessages, FairPlay-style SPC/CKC, PlayReady-style
    SOAP, XMR and WRMHEADER, PSSH boxes, Clear Key JSON, entitlement JWTs and presigned
    media URLs. Exit status 0 when recognised, 1 when not.
    """
    from license_server.inspect import Context, inspect
    from license_server.keyring import KeyringError, default_keys_dir, load_keyring

    data = sys.stdin.buffer.read() if str(source) == "-" else source.read_bytes()
    context = Context()
    if not no_keys:
        try:
            context = Context.from_keyring(load_keyring(keys_dir or default_keys_dir()))
        except KeyringError as exc:
            click.echo(f"warning: decoding without keys ({exc})", err=True)
    document = inspect(data, context, now=wall_clock_now())
    click.echo(json.dumps(document, indent=2, sort_keys=True) if as_json else render_text(document))
    sys.exit(0 if document["recognised"] else 1)


@click.command("console-bench")
@click.option("--licenses", "count", default=100_000, show_default=True, type=click.IntRange(100, 2_000_000),
              help="Licenses seeded into a throw-away store.")
@click.option("--rounds", default=20, show_default=True, type=click.IntRange(1, 1000), help="Requests per page.")
def console_bench_command(count: int, rounds: int) -> None:
    """Print the web console's page latency with COUNT licenses in the store (not a timed test)."""
    import asyncio

    from license_server.console.bench import measure, report

    results = asyncio.run(measure(count, rounds, lambda m: click.echo(m, err=True)))
    click.echo(report(results, count))
