"""Report files: report.json (tools), junit.xml (CI) and report.html (one offline page for reviewers)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from xml.etree import ElementTree as ET

from license_server import __version__
from conformance.catalog import ERROR, FAILED, NOT_APPLICABLE, PASSED
from conformance.runner import RunReport

COLOURS = {PASSED: "#2e7d32", FAILED: "#c62828", ERROR: "#6a1b9a", NOT_APPLICABLE: "#9e9e9e"}
LABELS = {PASSED: "passed", FAILED: "failed", ERROR: "error", NOT_APPLICABLE: "not applicable"}


def to_json(report: RunReport) -> dict:
    return {"tool": "drm-conformance", "version": __version__, "target": report.target,
            "started_at": report.started_at, "target_info": report.target_info,
            "capabilities": report.capabilities, "counts": report.counts(), "ok": report.ok,
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
        case = ET.SubElement(suite, "testcase", classname=f"conformance.{r.system}", name=f"{r.check.id} {r.check.title}",
                             time=f"{r.duration:.3f}")
        evidence = json.dumps(r.evidence, indent=2, default=str)
        if r.status == FAILED:
            ET.SubElement(case, "failure", message=r.reason, type="failed").text = evidence
        elif r.status == ERROR:
            ET.SubElement(case, "error", message=r.reason, type="error").text = evidence
        elif r.status == NOT_APPLICABLE:
            ET.SubElement(case, "skipped", message=r.reason)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.cell{color:#fff;font-weight:bold;text-align:center}pre{background:#f5f5f5;padding:8px;overflow:auto;max-width:90vw}
.summary span{display:inline-block;margin-right:1em;padding:2px 8px;color:#fff;border-radius:3px}"""


def to_html(report: RunReport) -> str:
    e = html.escape
    systems = sorted({r.system for r in report.results})
    by_check: dict[str, dict[str, object]] = {}
    for r in report.results:
        by_check.setdefault(r.check.id, {"check": r.check})[r.system] = r
    counts = report.counts()
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>DRM conformance report</title>"
           f"<style>{_STYLE}</style></head><body>",
           "<h1>DRM conformance report</h1>",
           f"<p>Target: <code>{e(report.target)}</code><br>drm-conformance version {e(__version__)}<br>"
           f"Date: {e(report.started_at)}<br>Verdict: <strong>{'OK' if report.ok else 'FAILED'}</strong></p>",
           "<p class='summary'>" + "".join(
               f"<span data-status='{s}' data-count='{counts[s]}' style='background:{COLOURS[s]}'>"
               f"{LABELS[s]}: {counts[s]}</span>" for s in COLOURS) + "</p>",
           "<h2>Matrix</h2><table><tr><th>Check</th><th>Severity</th><th>Title</th>"
           + "".join(f"<th>{e(s)}</th>" for s in systems) + "</tr>"]
    for check_id, row in by_check.items():
        check = row["check"]
        cells = []
        for s in systems:
            r = row.get(s)
            if r is None:
                cells.append("<td>-</td>")
            else:
                cells.append(f"<td class='cell result' data-status='{r.status}' style='background:{COLOURS[r.status]}'>"
                             f"<a style='color:#fff' href='#{e(check_id)}-{e(s)}'>{LABELS[r.status]}</a></td>")
        out.append(f"<tr><td>{e(check_id)}</td><td>{e(check.severity)}</td><td>{e(check.title)}</td>{''.join(cells)}</tr>")
    out.append("</table><h2>Evidence</h2>")
    for r in report.results:
        out.append(
            f"<details id='{e(r.check.id)}-{e(r.system)}'{' open' if r.counts_as_failed else ''}><summary>"
            f"<strong style='color:{COLOURS[r.status]}'>{LABELS[r.status].upper()}</strong> "
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
