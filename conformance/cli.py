"""``drm-conformance``: list the catalog, run it against a server, write reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from conformance.catalog import ERROR, FAILED, NOT_APPLICABLE, PASSED, load_all, select
from conformance.runner import Result, RunReport, run_checks, spawned_server
from device_emulator.namespaces import in_namespace
from license_server import __version__

MARKS = {PASSED: "PASS", FAILED: "FAIL", ERROR: "ERROR", NOT_APPLICABLE: "N/A"}
EXIT_FAILED, EXIT_INCOMPLETE = 1, 3


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="drm-conformance")
def main() -> None:
    """Conformance suite for DRM license servers speaking our documented dialects."""


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
@click.option("--markdown", is_flag=True, help="Print the catalog as the Markdown table of docs/conformance.md.")
@click.option("--systems", default=None, help="Comma-separated dialects (e.g. widevine,clearkey).")
@click.option("--only", "only", multiple=True, help="Check id glob, e.g. 'ATT-*'.")
def list_checks(as_json: bool, markdown: bool, systems: str | None, only: tuple[str, ...]) -> None:
    """Print the catalog of checks."""
    wanted = _known_systems(_csv(systems))
    checks = select(load_all(), systems=wanted, only=[p for item in only for p in _csv(item) or []] or None)
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in checks], indent=2))
        return
    if markdown:
        click.echo(markdown_table(checks))
        return
    for c in checks:
        needs = f"  [needs {', '.join(c.needs)}]" if c.needs else ""
        applies = [s for s in c.systems if s not in c.not_applicable and (not wanted or s in wanted)]
        click.echo(f"{c.id}  {c.severity:<8}  {','.join(applies) or '-':<37}  {c.title}{needs}")


def _known_systems(wanted: list[str] | None) -> list[str] | None:
    """``--systems`` as given, refused if it names a dialect the suite does not know."""
    from conformance.catalog import SYSTEMS

    unknown = sorted(set(wanted or ()) - set(SYSTEMS))
    if unknown:
        raise click.UsageError(f"unknown dialect(s) {', '.join(unknown)} (known: {', '.join(SYSTEMS)})")
    return wanted


def markdown_table(checks: list) -> str:
    """The catalog as a Markdown table (a test keeps docs/conformance.md equal to it)."""
    from conformance.catalog import SYSTEMS

    def cell(c, s: str) -> str:
        return "✓" if s in c.impls else ("n/a" if s in c.not_applicable else "")

    rows = ["| id | severity | check | " + " | ".join(SYSTEMS) + " | needs |",
            "|---|---|---|" + "---|" * len(SYSTEMS) + "---|"]
    for c in checks:
        rows.append(f"| {c.id} | {c.severity} | {c.title} | " + " | ".join(cell(c, s) for s in SYSTEMS)
                    + f" | {', '.join(c.needs)} |")
    return "\n".join(rows)


@main.command()
@click.option("--server", default=None, help="Base URL of the server under test.")
@click.option("--spawn", is_flag=True,
              help="Start a local license server (--test-clock, own data directory and admin token) and test it.")
@click.option("--admin-token", default=None, envvar="DRM_CONFORMANCE_ADMIN_TOKEN",
              help="Bearer token of the target's /admin/ API (time control, revocations) "
                   "[env: DRM_CONFORMANCE_ADMIN_TOKEN].")
@click.option("--systems", default=None, help="Comma-separated dialects to test [default: all].")
@click.option("--only", "only", multiple=True, help="Check id glob, e.g. 'ATT-*' (repeatable or comma-separated).")
@click.option("--report", "report_dir", default=None, type=click.Path(path_type=Path, file_okay=False),
              help="Write report.json, junit.xml and report.html into this directory.")
@click.option("--keys", "keys_dir", default=None, type=click.Path(path_type=Path),
              help="keys/ directory the target trusts [default: the project's public test keys].")
@click.option("--quiet", is_flag=True, help="No progress lines.")
@click.option("--allow-incomplete", is_flag=True,
              help="Verdict OK even if critical checks could not run (no time control, missing or wrong admin token).")
@click.option("--namespace", default=None, envvar="DRM_NAMESPACE", show_envvar=True,
              help="Run isolated in this namespace of the server (SERVER/ns/NAME/); with an admin token it is "
                   "reset first, so a fresh name starts clean (docs/namespaces.md).")
def run(server: str | None, spawn: bool, admin_token: str | None, systems: str | None, only: tuple[str, ...],
        report_dir: Path | None, keys_dir: Path | None, quiet: bool, allow_incomplete: bool = False,
        namespace: str | None = None) -> None:
    """Run the checks. Exit 0 if the verdict is OK, 1 if a check failed or errored, 3 if INCOMPLETE
    (a critical check could not run; --allow-incomplete accepts that)."""
    if bool(server) == spawn:
        raise click.UsageError("give exactly one of --server URL or --spawn")
    if spawn and admin_token:
        raise click.UsageError("--admin-token is for --server; a spawned server gets a fresh token of its own")
    patterns = [p for item in only for p in _csv(item) or []] or None
    wanted = _known_systems(_csv(systems))
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
        with spawned_server(keys_dir=keys_dir) as spawned:
            click.echo(f"spawned license server at {spawned.url} (--test-clock)", err=True)
            report = run_checks(in_namespace(spawned.url, namespace), checks, systems=wanted, keys_dir=keys_dir,
                                progress=progress,
                                admin_token=spawned.admin_token, data_dir=spawned.data_dir,
                                allow_incomplete=allow_incomplete)
    else:
        target = in_namespace(server or "", namespace)
        if namespace and namespace != "default" and admin_token:
            _reset_namespace(server or "", namespace, admin_token)
        report = run_checks(target, checks, systems=wanted, keys_dir=keys_dir, progress=progress,
                            admin_token=admin_token, allow_incomplete=allow_incomplete)
    click.echo(summary_table(report))
    if report_dir:
        from conformance.report import write_reports

        written = write_reports(report, report_dir)
        click.echo("reports: " + ", ".join(str(p) for p in written))
    if report.verdict == "INCOMPLETE":
        click.echo("INCOMPLETE: " + report.incomplete_explanation(), err=True)
    sys.exit({"OK": 0, "FAILED": EXIT_FAILED}.get(report.verdict, EXIT_INCOMPLETE))


def _reset_namespace(server: str, namespace: str, admin_token: str) -> None:
    """Empty the namespace before the run (its clock, faults, revocations, rights, licenses)."""
    from device_emulator import transport
    from device_emulator.errors import TransportError

    url = f"{server.rstrip('/')}/admin/namespaces/{namespace}/reset"
    try:
        reply = transport.post(url, b"", headers={"Authorization": f"Bearer {admin_token}"}, timeout=30)
    except TransportError as exc:  # the run itself reports an unreachable server
        click.echo(f"could not reset namespace {namespace}: {exc}", err=True)
        return
    if reply.status != 200:
        raise click.UsageError(f"POST /admin/namespaces/{namespace}/reset answered {reply.status} "
                               f"{reply.error_code or ''}".strip())
    click.echo(f"namespace {namespace} reset", err=True)


def summary_table(report: RunReport) -> str:
    rows = [("ID", "SYSTEM", "RESULT", "SEVERITY", "TITLE")]
    rows += [(r.check.id, r.system, MARKS[r.status], r.check.severity, r.check.title) for r in report.results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)) for row in rows]
    c = report.counts()
    lines.append("")
    lines.append(f"target {report.target}: {c[PASSED]} passed, {c[FAILED]} failed, {c[ERROR]} errors, "
                 f"{c[NOT_APPLICABLE]} not applicable -> {report.verdict}")
    if report.skipped_critical:
        lines.append(("skipped (accepted with --allow-incomplete): " if report.allow_incomplete else "")
                     + report.incomplete_explanation())
    return "\n".join(lines)


if __name__ == "__main__":
    main()
