"""``drm-conformance``: list the catalog, run it against a server, write reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from conformance.catalog import ERROR, FAILED, NOT_APPLICABLE, PASSED, load_all, select
from conformance.runner import Result, RunReport, run_checks, spawned_server

MARKS = {PASSED: "PASS", FAILED: "FAIL", ERROR: "ERROR", NOT_APPLICABLE: "N/A"}


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Conformance suite for DRM license servers speaking our documented dialects."""


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
@click.option("--systems", default=None, help="Comma-separated dialects (e.g. widevine).")
def list_checks(as_json: bool, systems: str | None) -> None:
    """Print the catalog of checks."""
    checks = select(load_all(), systems=_csv(systems))
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in checks], indent=2))
        return
    for c in checks:
        needs = f"  [needs {', '.join(c.needs)}]" if c.needs else ""
        click.echo(f"{c.id}  {c.severity:<8}  {','.join(c.systems):<10}  {c.title}{needs}")


@main.command()
@click.option("--server", default=None, help="Base URL of the server under test.")
@click.option("--spawn", is_flag=True, help="Start a local license server (--test-clock) and test it.")
@click.option("--systems", default=None, help="Comma-separated dialects to test [default: all].")
@click.option("--only", "only", multiple=True, help="Check id glob, e.g. 'ATT-*' (repeatable or comma-separated).")
@click.option("--report", "report_dir", default=None, type=click.Path(path_type=Path, file_okay=False),
              help="Write report.json, junit.xml and report.html into this directory.")
@click.option("--keys", "keys_dir", default=None, type=click.Path(path_type=Path),
              help="keys/ directory the target trusts [default: the project's public test keys].")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def run(server: str | None, spawn: bool, systems: str | None, only: tuple[str, ...], report_dir: Path | None,
        keys_dir: Path | None, quiet: bool) -> None:
    """Run the checks; exit 0 only if none failed (or errored)."""
    if bool(server) == spawn:
        raise click.UsageError("give exactly one of --server URL or --spawn")
    patterns = [p for item in only for p in _csv(item) or []] or None
    wanted = _csv(systems)
    checks = select(load_all(), systems=wanted, only=patterns)
    if not checks:
        raise click.UsageError("no check matches the given --systems/--only")

    def progress(index: int, total: int, result: Result) -> None:
        if not quiet:
            line = f"[{index:>2}/{total}] {result.check.id} {result.system:<9} {MARKS[result.status]:<5} " \
                   f"{result.check.title}"
            if result.status != PASSED and result.reason:
                line += f"\n        -> {result.reason}"
            click.echo(line, err=True)

    if spawn:
        with spawned_server(keys_dir=keys_dir) as url:
            click.echo(f"spawned license server at {url} (--test-clock)", err=True)
            report = run_checks(url, checks, systems=wanted, keys_dir=keys_dir, progress=progress)
    else:
        report = run_checks(server or "", checks, systems=wanted, keys_dir=keys_dir, progress=progress)
    click.echo(summary_table(report))
    if report_dir:
        from conformance.report import write_reports

        written = write_reports(report, report_dir)
        click.echo("reports: " + ", ".join(str(p) for p in written))
    sys.exit(0 if report.ok else 1)


def summary_table(report: RunReport) -> str:
    rows = [("ID", "SYSTEM", "RESULT", "SEVERITY", "TITLE")]
    rows += [(r.check.id, r.system, MARKS[r.status], r.check.severity, r.check.title) for r in report.results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)) for row in rows]
    c = report.counts()
    lines.append("")
    lines.append(f"target {report.target}: {c[PASSED]} passed, {c[FAILED]} failed, {c[ERROR]} errors, "
                 f"{c[NOT_APPLICABLE]} not applicable -> {'OK' if report.ok else 'FAILED'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
