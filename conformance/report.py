"""Report files: report.json (tools), junit.xml (CI) and report.html (one offline page for reviewers)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from xml.etree import ElementTree as ET

from conformance.catalog import ERROR, FAILED, NOT_APPLICABLE, PASSED, Check
from conformance.runner import Result, RunReport
from license_server import __version__, dialects

COLOURS = {PASSED: "#2e7d32", FAILED: "#c62828", ERROR: "#6a1b9a", NOT_APPLICABLE: "#9e9e9e"}
LABELS = {PASSED: "passed", FAILED: "failed", ERROR: "error", NOT_APPLICABLE: "not applicable"}


def to_json(report: RunReport) -> dict:
    return {"tool": "drm-conformance", "version": __version__, "target": report.target,
            "started_at": report.started_at, "target_info": report.target_info,
            "capabilities": report.capabilities, "counts": report.counts(), "ok": report.ok,
            "verdict": report.verdict,
            "skipped_critical": [f"{r.check.id}/{r.system}" for r in report.skipped_critical],
            "incomplete": report.incomplete_explanation() or None,
            "results": [r.as_dict() for r in report.results]}


def to_junit(report: RunReport) -> bytes:
    counts = report.counts()
    suite = ET.Element("testsuite", name="drm-conformance", tests=str(len(report.results)),
                       failures=str(counts[FAILED]), errors=str(counts[ERROR]), skipped=str(counts[NOT_APPLICABLE]),
                       timestamp=report.started_at, hostname=report.target,
                       time=f"{sum(r.duration for r in report.results):.3f}")
    props = ET.SubElement(suite, "properties")
    for name, value in (("target", report.target), ("version", __version__)):
        ET.SubElement(props, "property", name=name, value=value)
    for r in report.results:
        case = ET.SubElement(suite, "testcase", classname=f"conformance.{r.system}",
                             name=f"{r.check.id} {r.check.title}", time=f"{r.duration:.3f}")
        evidence = json.dumps(r.evidence, indent=2, default=str)
        if r.status == FAILED:
            ET.SubElement(case, "failure", message=r.reason, type="failed").text = evidence
        elif r.status == ERROR:
            ET.SubElement(case, "error", message=r.reason, type="error").text = evidence
        elif r.status == NOT_APPLICABLE:
            ET.SubElement(case, "skipped", message=r.reason)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th.family{background:#eceff1;font-weight:600}td.id{white-space:nowrap;font-family:monospace}
.cell{color:#fff;font-weight:bold;text-align:center;white-space:nowrap}
.cell a{color:#fff;text-decoration:none}.none{color:#999;text-align:center}
pre{background:#f5f5f5;padding:8px;overflow:auto;max-width:90vw;font-size:12px}
.summary span{display:inline-block;margin-right:1em;padding:2px 8px;color:#fff;border-radius:3px}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:600}dd{margin:0}
details{margin:4px 0;border-left:4px solid #ccc;padding-left:8px}summary{cursor:pointer}"""


def _cell(r: Result | None, check_id: str, system: str) -> str:
    e = html.escape
    if r is None:
        return f"<td class='none' data-check='{e(check_id)}' data-system='{e(system)}'>-</td>"
    return (f"<td class='cell result' data-status='{r.status}' data-check='{e(check_id)}' data-system='{e(system)}' "
            f"style='background:{COLOURS[r.status]}' title='{e(r.reason)}'>"
            f"<a href='#{e(check_id)}-{e(system)}'>{LABELS[r.status]}</a></td>")


def to_html(report: RunReport) -> str:
    """One self-contained page: header, counts, the checks x dialects matrix, then the evidence of every result."""
    e = html.escape
    order = dialects.NAMES
    present = {r.system for r in report.results}
    systems = [s for s in order if s in present] + sorted(present - set(order))
    checks: dict[str, Check] = {}
    by_check: dict[str, dict[str, Result]] = {}
    for r in report.results:
        checks.setdefault(r.check.id, r.check)
        by_check.setdefault(r.check.id, {})[r.system] = r
    counts = report.counts()
    info = report.target_info
    facts = {"Target": report.target, "Server version": info.get("version", "?"),
             "Dialects served": ", ".join(info.get("systems", [])) or "?",
             "drm-conformance version": __version__, "Date": report.started_at,
             "Time control": "yes" if report.capabilities.get("test-clock") else "no",
             "Revocation control": "yes" if report.capabilities.get("revocation") else "no",
             "Rights control": "yes" if report.capabilities.get("rights") else "no",
             "Entitlement tokens": "yes" if report.capabilities.get("tokens") else "no",
             "Device adapter": (report.capabilities.get("device_adapter") or {}).get("name", "?"),
             "Verdict": report.verdict + (f" ({report.incomplete_explanation()})" if report.verdict == "INCOMPLETE"
                                          else "")}
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>DRM conformance report</title>"
           f"<style>{_STYLE}</style></head><body>",
           "<h1>DRM conformance report</h1>",
           "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{'<strong>' if k == 'Verdict' else ''}{e(str(v))}"
                            f"{'</strong>' if k == 'Verdict' else ''}</dd>" for k, v in facts.items()) + "</dl>",
           "<p class='summary'>" + "".join(
               f"<span data-status='{s}' data-count='{counts[s]}' style='background:{COLOURS[s]}'>"
               f"{LABELS[s]}: {counts[s]}</span>" for s in COLOURS) + "</p>",
           "<h2>Matrix</h2><table><tr><th>Check</th><th>Severity</th><th>Title</th>"
           + "".join(f"<th>{e(s)}</th>" for s in systems) + "</tr>"]
    family = None
    for check_id, row in by_check.items():
        check = checks[check_id]
        if check.family != family:
            family = check.family
            out.append(f"<tr><th class='family' colspan='{3 + len(systems)}'>{e(family.capitalize())}</th></tr>")
        cells = "".join(_cell(row.get(s), check_id, s) for s in systems)
        out.append(f"<tr><td class='id'>{e(check_id)}</td><td>{e(check.severity)}</td><td>{e(check.title)}</td>"
                   f"{cells}</tr>")
    out.append("</table><h2>Evidence</h2><p>Failures and errors are open; click any line to expand it.</p>")
    for r in report.results:
        out.append(
            f"<details id='{e(r.check.id)}-{e(r.system)}' data-check='{e(r.check.id)}' data-system='{e(r.system)}' "
            f"data-status='{r.status}' style='border-color:{COLOURS[r.status]}'{' open' if r.counts_as_failed else ''}>"
            f"<summary><strong style='color:{COLOURS[r.status]}'>{LABELS[r.status].upper()}</strong> "
            f"{e(r.check.id)} ({e(r.system)}) {e(r.check.title)}</summary>"
            f"<p>{e(r.check.description)}<br>Reference: {e(r.check.reference)}<br>Severity: {e(r.check.severity)}"
            f"<br>Result: {e(r.reason)}</p><pre>{e(json.dumps(r.evidence, indent=2, default=str))}</pre></details>")
    out.append("</body></html>")
    return "\n".join(out)


def write_reports(report: RunReport, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "report.json", directory / "junit.xml", directory / "report.html"]
    paths[0].write_text(json.dumps(to_json(report), indent=2, default=str) + "\n", encoding="utf-8")
    paths[1].write_bytes(to_junit(report))
    paths[2].write_text(to_html(report), encoding="utf-8")
    return paths
