"""Run selected checks against a target, and optionally spawn a local server to be the target."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.catalog import ERROR, FAILED, NOT_APPLICABLE, PASSED, Check, Context, NotApplicable, Outcome
from conformance.target import need_reason, probe
from device_emulator import transport


@dataclass
class Result:
    check: Check
    system: str
    status: str
    reason: str
    evidence: dict[str, Any]
    duration: float
    skipped_for: tuple[str, ...] = ()  # capabilities the target lacked, so the check could not run

    @property
    def counts_as_failed(self) -> bool:
        return self.status in (FAILED, ERROR)

    @property
    def critical_skip(self) -> bool:
        """A critical check that could not run on this target (not one that cannot apply to the dialect)."""
        return self.status == NOT_APPLICABLE and bool(self.skipped_for) and self.check.severity == "critical"

    def as_dict(self) -> dict[str, Any]:
        return {**self.check.as_dict(), "system": self.system, "status": self.status, "reason": self.reason,
                "evidence": self.evidence, "duration_s": round(self.duration, 3),
                **({"skipped_for": list(self.skipped_for)} if self.skipped_for else {})}


@dataclass
class RunReport:
    target: str
    started_at: str
    target_info: dict[str, Any]
    capabilities: dict[str, Any]
    results: list[Result] = field(default_factory=list)
    allow_incomplete: bool = False

    def counts(self) -> dict[str, int]:
        counts = {PASSED: 0, FAILED: 0, ERROR: 0, NOT_APPLICABLE: 0}
        for r in self.results:
            counts[r.status] += 1
        return counts

    @property
    def skipped_critical(self) -> list[Result]:
        """Critical checks that could not run because the target lacked a capability (e.g. the admin token)."""
        return [r for r in self.results if r.critical_skip]

    @property
    def verdict(self) -> str:
        """FAILED if any check failed or errored; INCOMPLETE if a critical check could not run; else OK."""
        if any(r.counts_as_failed for r in self.results):
            return "FAILED"
        if self.skipped_critical and not self.allow_incomplete:
            return "INCOMPLETE"
        return "OK"

    @property
    def ok(self) -> bool:
        return self.verdict == "OK"

    def incomplete_explanation(self) -> str:
        """Which critical checks were skipped and what would let them run."""
        skipped = self.skipped_critical
        if not skipped:
            return ""
        needs = sorted({n for r in skipped for n in r.skipped_for})
        names = ", ".join(f"{r.check.id}/{r.system}" for r in skipped)
        hints = "; ".join(f"{n}: {ENABLE.get(n, 'give the target ' + n)}" for n in needs)
        return (f"{len(skipped)} critical check(s) could not run: {names}. To run them: {hints}. "
                "Pass --allow-incomplete to accept the run without them.")


ADMIN_HINT = ("pass the server's current admin token (--admin-token or DRM_CONFORMANCE_ADMIN_TOKEN; "
              "a server that generated one wrote it to DATA_DIR/admin-token)")
ENABLE = {
    "test-clock": "start the server with --test-clock and " + ADMIN_HINT,
    "revocation": ADMIN_HINT,
    "rights": ADMIN_HINT,
    "admin": ADMIN_HINT,
    "tokens": "serve a server that reports entitlement-token support in GET /healthz",
}


def run_one(check: Check, system: str, ctx: Context) -> Result:
    """Run one check for one dialect; unmet needs and exceptions never end as passed."""
    started = time.monotonic()
    ctx.system = system
    missing = [need for need in check.needs if not ctx.capabilities.get(need)]
    skipped_for: tuple[str, ...] = ()
    if system in check.not_applicable:  # the dialect cannot have the property, whatever the target offers
        outcome = Outcome.not_applicable(check.not_applicable[system])
    elif missing:
        skipped_for = tuple(missing)
        outcome = Outcome.not_applicable("; ".join(need_reason(n, ctx.capabilities) for n in missing),
                                         needs=list(check.needs),
                                         capabilities={n: ctx.capabilities.get(n) for n in check.needs})
    else:
        try:
            outcome = check.run(ctx)
            if not isinstance(outcome, Outcome):
                raise TypeError(f"check returned {type(outcome).__name__}, not an Outcome")
        except NotApplicable as exc:
            outcome = Outcome.not_applicable(exc.reason, **exc.evidence)
        except Exception as exc:
            outcome = Outcome(ERROR, f"the check could not run: {type(exc).__name__}: {exc}",
                              {"traceback": traceback.format_exc(limit=8)})
    return Result(check, system, outcome.status, outcome.reason, outcome.evidence, time.monotonic() - started,
                  skipped_for)


def plan(checks: list[Check], systems: list[str] | None = None) -> list[tuple[Check, str]]:
    """Every (check, dialect) pair to run, in catalog order."""
    return [(c, s) for c in checks for s in c.systems if not systems or s in systems]


def run_checks(server: str, checks: list[Check], *, systems: list[str] | None = None, keys_dir: Path | None = None,
               admin_token: str | None = None, data_dir: Path | None = None, adapter=None,
               progress: Callable[[int, int, Result], None] | None = None,
               allow_incomplete: bool = False) -> RunReport:
    """Probe the target, then run every selected (check, dialect) pair in order."""
    from conformance.device_adapter import EmulatorAdapter
    from license_server.clock import to_iso, wall_clock_now

    info, capabilities = probe(server, admin_token=admin_token, data_dir=data_dir)
    report = RunReport(server, to_iso(wall_clock_now()) or "", info, capabilities, allow_incomplete=allow_incomplete)
    pairs = plan(checks, systems)
    with tempfile.TemporaryDirectory(prefix="drm-conformance-") as work:
        ctx = Context(server=server, workdir=Path(work), keys_dir=keys_dir, capabilities=capabilities,
                      admin_token=admin_token, data_dir=data_dir)
        ctx.adapter = adapter if adapter is not None else EmulatorAdapter(ctx)
        report.capabilities["device_adapter"] = ctx.adapter.describe()
        for index, (check, system) in enumerate(pairs, 1):
            result = run_one(check, system, ctx)
            report.results.append(result)
            if progress:
                progress(index, len(pairs), result)
    return report


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class SpawnedServer:
    url: str
    data_dir: Path
    admin_token: str


@contextmanager
def spawned_server(*extra: str, keys_dir: Path | None = None, timeout: float = 30.0) -> Iterator[SpawnedServer]:
    """Start ``license-server serve --test-clock`` on a free loopback port with a fresh data directory
    and a random admin token; yield where it is; stop it afterwards."""
    with tempfile.TemporaryDirectory(prefix="drm-conformance-server-") as data:
        port = _free_port()
        token = secrets.token_urlsafe(24)
        args = [sys.executable, "-m", "license_server.cli", "serve", "--test-clock", "--port", str(port),
                "--data-dir", data, *extra]
        if keys_dir:
            args += ["--keys", str(keys_dir)]
        env = {**os.environ, **admin_token_env(token)}
        log = Path(data) / "server.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=sink, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(proc, url, timeout, log)
            yield SpawnedServer(url, Path(data), token)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def admin_token_env(token: str) -> dict[str, str]:
    """How a spawned server learns its admin token (the serve command reads it from the environment)."""
    return {"DRM_SERVER_ADMIN_TOKEN": token}


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
