"""Run selected checks against a target, and optionally spawn a local server to be the target."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from device_emulator import transport
from conformance.catalog import ERROR, FAILED, NOT_APPLICABLE, PASSED, Check, Context, Outcome

NEEDS_REASONS = {"test-clock": "the target offers no time control (GET /admin/clock is not available; "
                               "start the server with --test-clock)"}


@dataclass
class Result:
    check: Check
    system: str
    status: str
    reason: str
    evidence: dict[str, Any]
    duration: float

    @property
    def counts_as_failed(self) -> bool:
        return self.status in (FAILED, ERROR)

    def as_dict(self) -> dict[str, Any]:
        return {**self.check.as_dict(), "system": self.system, "status": self.status, "reason": self.reason,
                "evidence": self.evidence, "duration_s": round(self.duration, 3)}


@dataclass
class RunReport:
    target: str
    started_at: str
    target_info: dict[str, Any]
    capabilities: dict[str, Any]
    results: list[Result] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = {PASSED: 0, FAILED: 0, ERROR: 0, NOT_APPLICABLE: 0}
        for r in self.results:
            counts[r.status] += 1
        return counts

    @property
    def ok(self) -> bool:
        return not any(r.counts_as_failed for r in self.results)


def probe(server: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Target info from /healthz and capabilities (time control) from /admin/clock."""
    info: dict[str, Any] = {}
    try:
        reply = transport.get(server.rstrip("/") + "/healthz", timeout=10)
        info = json.loads(reply.body) if reply.status == 200 else {"healthz_status": reply.status}
    except (transport.TransportError, ValueError) as exc:
        info = {"healthz_error": str(exc)}
    try:
        clock = transport.get(server.rstrip("/") + "/admin/clock", timeout=10)
        test_clock = clock.status == 200
        clock_status = clock.status
    except transport.TransportError:
        test_clock, clock_status = False, None
    return info, {"test-clock": test_clock, "admin_clock_status": clock_status}


def run_one(check: Check, system: str, ctx: Context) -> Result:
    started = time.monotonic()
    missing = [need for need in check.needs if not ctx.capabilities.get(need)]
    if missing:
        outcome = Outcome.not_applicable("; ".join(NEEDS_REASONS.get(n, f"the target lacks {n}") for n in missing),
                                         capabilities=ctx.capabilities)
    else:
        try:
            outcome = check.run(ctx)
            if not isinstance(outcome, Outcome):
                raise TypeError(f"check returned {type(outcome).__name__}, not an Outcome")
        except Exception as exc:  # noqa: BLE001 - an exception inside a check is recorded, never passed
            outcome = Outcome(ERROR, f"the check could not run: {type(exc).__name__}: {exc}",
                              {"traceback": traceback.format_exc(limit=8)})
    return Result(check, system, outcome.status, outcome.reason, outcome.evidence, time.monotonic() - started)


def run_checks(server: str, checks: list[Check], *, systems: list[str] | None = None, keys_dir: Path | None = None,
               progress: Callable[[int, int, Result], None] | None = None) -> RunReport:
    from license_server.clock import to_iso, wall_clock_now

    info, capabilities = probe(server)
    report = RunReport(server, to_iso(wall_clock_now()) or "", info, capabilities)
    plan = [(c, s) for c in checks for s in c.systems if not systems or s in systems]
    with tempfile.TemporaryDirectory(prefix="drm-conformance-") as work:
        ctx = Context(server=server, workdir=Path(work), keys_dir=keys_dir, capabilities=capabilities)
        for index, (check, system) in enumerate(plan, 1):
            result = run_one(check, system, ctx)
            report.results.append(result)
            if progress:
                progress(index, len(plan), result)
    return report


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def spawned_server(*extra: str, keys_dir: Path | None = None, timeout: float = 30.0) -> Iterator[str]:
    """Start ``license-server serve --test-clock`` on a free loopback port; yield its URL; stop it."""
    with tempfile.TemporaryDirectory(prefix="drm-conformance-server-") as data:
        port = _free_port()
        args = [sys.executable, "-m", "license_server.cli", "serve", "--test-clock", "--port", str(port),
                "--data-dir", data, *extra]
        if keys_dir:
            args += ["--keys", str(keys_dir)]
        log = Path(data) / "server.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=sink)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(proc, url, timeout, log)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _wait_ready(proc: subprocess.Popen, url: str, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if transport.get(url + "/healthz", timeout=1).status == 200:
                return
        except transport.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"the spawned server did not start: {log.read_text(errors='replace')[-2000:]}")
