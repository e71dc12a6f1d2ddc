"""Screenshot of a conformance HTML report in headless Chromium (for docs/conformance.md).

Usage::

    python -m conformance.screenshot --spawn --out docs/img/conformance-report.png
    python -m conformance.screenshot --report out/conformance/report.html --out shot.png

``--spawn`` first runs the whole suite against a spawned server into a
temporary directory. Chromium is Debian's (``/usr/bin/chromium`` or
``$DRM_CHROMIUM``), driven by ``playwright-core`` from ``tests/browser/node_modules``
(installed by ``.ci/setup``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import click

PROJECT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).with_name("screenshot.mjs")
NODE_MODULES = PROJECT / "tests" / "browser" / "node_modules"


class ScreenshotError(Exception):
    """Node, Chromium or playwright-core is missing, or the browser failed."""


def chromium_path() -> str | None:
    found = os.environ.get("DRM_CHROMIUM") or "/usr/bin/chromium"
    return found if Path(found).exists() else shutil.which("chromium")


def missing_tools(node_modules: Path = NODE_MODULES) -> list[str]:
    """What is missing to take a screenshot (empty when everything is there)."""
    missing = [] if shutil.which("node") else ["node"]
    if chromium_path() is None:
        missing.append("chromium")
    if not (node_modules / "playwright-core").is_dir():
        missing.append(f"playwright-core in {node_modules}")
    return missing


def screenshot(report: Path, out: Path, *, node_modules: Path = NODE_MODULES, width: int = 1280,
               timeout: float = 120) -> dict:
    """Render ``report`` (report.html) into the PNG ``out``; return the driver's JSON answer."""
    missing = missing_tools(node_modules)
    if missing:
        raise ScreenshotError("cannot take the screenshot, missing: " + ", ".join(missing))
    out.parent.mkdir(parents=True, exist_ok=True)
    options = {"report": str(report.resolve()), "out": str(out.resolve()), "nodeModules": str(node_modules.resolve()),
               "chromium": chromium_path(), "width": width}
    done = subprocess.run(["node", str(SCRIPT), json.dumps(options)], capture_output=True, text=True,
                          timeout=timeout)
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise ScreenshotError(f"the browser driver said nothing useful: {done.stderr[-2000:]}") from exc
    if not answer.get("ok") or not out.exists():
        raise ScreenshotError(f"the browser driver failed: {answer}")
    return answer


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--report", type=click.Path(path_type=Path, dir_okay=False), help="An existing report.html.")
@click.option("--spawn", is_flag=True, help="Run the whole suite against a spawned server first.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("docs/img/conformance-report.png"),
              show_default=True, help="Where to write the PNG.")
def main(report: Path | None, spawn: bool, out: Path) -> None:
    """Save a PNG of a conformance HTML report, taken in headless Chromium."""
    if bool(report) == spawn:
        raise click.UsageError("give exactly one of --report FILE or --spawn")
    with tempfile.TemporaryDirectory(prefix="drm-conformance-shot-") as work:
        if report is None:  # --spawn: make the report first
            from conformance.catalog import load_all
            from conformance.report import write_reports
            from conformance.runner import run_checks, spawned_server

            with spawned_server() as server:
                result = run_checks(server.url, list(load_all().values()), admin_token=server.admin_token,
                                    data_dir=server.data_dir)
            report = write_reports(result, Path(work))[2]
        try:
            answer = screenshot(report, out)
        except ScreenshotError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {out} ({answer.get('height')} px high)")


if __name__ == "__main__":
    main()
