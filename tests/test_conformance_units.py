"""The conformance machinery without our server: outcomes, vectors, adapters, relay, screenshot.

Deliberately broken targets (a fake HTTP server, a cheating device adapter)
show that checks fail when they should, with evidence.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conformance import checks_device, checks_robustness
from conformance.catalog import (
    ERROR,
    FAILED,
    NOT_APPLICABLE,
    PASSED,
    REGISTRY,
    Context,
    NotApplicable,
    Outcome,
    check,
    implements,
    load_all,
)
from conformance.device_adapter import Acquired, Decision
from conformance.relay import Relay
from conformance.report import to_html, to_junit
from conformance.runner import RunReport, run_checks, run_one

KEYS = Path(__file__).resolve().parent.parent / "keys"


@pytest.fixture
def ctx(tmp_path) -> Context:
    return Context("http://127.0.0.1:9", tmp_path, keys_dir=KEYS)


@pytest.fixture
def temporary_check():
    added: list[str] = []

    def register(check_id: str, fn, **kwargs):
        check(check_id, "temporary", systems=kwargs.pop("systems", ("widevine",)), severity="low",
              reference="test", **kwargs)(fn)
        added.append(check_id)
        return REGISTRY[check_id]

    yield register
    for check_id in added:
        REGISTRY.pop(check_id, None)


# ------------------------------------------------------------------ outcomes

def test_an_exception_inside_a_check_is_an_error_never_a_pass(temporary_check, ctx):
    def boom(_: Context) -> Outcome:
        raise RuntimeError("kaboom")

    result = run_one(temporary_check("TST-900", boom), "widevine", ctx)
    assert result.status == ERROR and result.counts_as_failed and "kaboom" in result.reason
    assert "Traceback" in result.evidence["traceback"]


def test_a_check_returning_something_else_is_an_error(temporary_check, ctx):
    result = run_one(temporary_check("TST-901", lambda _: True), "widevine", ctx)
    assert result.status == ERROR and "not an Outcome" in result.reason


def test_not_applicable_raised_at_run_time_carries_its_reason(temporary_check, ctx):
    def cannot(_: Context) -> Outcome:
        raise NotApplicable("no such thing here", seen="x")

    result = run_one(temporary_check("TST-902", cannot), "widevine", ctx)
    assert (result.status, result.reason, result.evidence) == (NOT_APPLICABLE, "no such thing here", {"seen": "x"})
    assert not result.counts_as_failed


def test_unmet_needs_are_not_applicable_with_the_reason(temporary_check, ctx):
    ran = []
    entry = temporary_check("TST-903", lambda c: ran.append(1) or Outcome.passed(), needs=("test-clock", "revocation"))
    ctx.capabilities = {"test-clock": False, "revocation": False, "admin_status": {"clock": 401}}
    result = run_one(entry, "widevine", ctx)
    assert result.status == NOT_APPLICABLE and not ran
    assert "HTTP 401" in result.reason and "revoke" in result.reason


def test_static_not_applicable_dialects_and_added_implementations(temporary_check, ctx):
    entry = temporary_check("TST-904", lambda c: Outcome.passed("wv"), not_applicable={"clearkey": "no identity"})

    @implements("TST-904", "fairplay")
    def fairplay(c: Context) -> Outcome:
        return Outcome.failed("fp")

    assert entry.systems == ("widevine", "fairplay", "clearkey")
    assert [run_one(entry, s, ctx).status for s in entry.systems] == [PASSED, FAILED, NOT_APPLICABLE]
    assert run_one(entry, "clearkey", ctx).reason == "no identity"
    with pytest.raises(ValueError):
        implements("TST-904", "fairplay")(fairplay)
    with pytest.raises(ValueError):
        implements("TST-999", "fairplay")(fairplay)


def test_reports_of_a_mixed_run_agree(temporary_check, tmp_path):
    entries = [temporary_check(f"TST-91{i}", fn) for i, fn in enumerate(
        [lambda c: Outcome.passed("ok"), lambda c: Outcome.failed("bad <b>", observed=1),
         lambda c: Outcome.not_applicable("n/a"), lambda c: 1 / 0])]
    report = RunReport("http://t", "2027-01-01T00:00:00Z", {}, {})
    report.results = [run_one(e, "widevine", Context("http://t", tmp_path)) for e in entries]
    assert report.counts() == {PASSED: 1, FAILED: 1, ERROR: 1, NOT_APPLICABLE: 1} and not report.ok
    junit = to_junit(report).decode()
    assert junit.count("<failure") == 1 and junit.count("<error") == 1 and junit.count("<skipped") == 1
    page = to_html(report)
    assert "bad &lt;b&gt;" in page and "bad <b>" not in page  # evidence and reasons are escaped
    assert page.count("data-status='failed' data-check='TST-911'") == 1


# ------------------------------------------------------------------ vectors

@pytest.mark.parametrize("system", ["widevine", "fairplay", "playready", "clearkey"])
def test_vectors_describe_buildable_bodies(system, ctx):
    doc = checks_robustness.vectors(system)
    assert doc["dialect"] == system and doc["endpoint"]["path"].startswith(f"/{system}/")
    assert {c["category"] for c in doc["cases"]} == set(checks_robustness.CATEGORIES)
    ids = [c["id"] for c in doc["cases"]]
    assert len(ids) == len(set(ids))
    ctx.system = system
    for case in doc["cases"]:
        if system == "fairplay" and "challenge" in case["body"]:
            continue  # an SPC needs the server's application certificate (covered end to end)
        bodies = checks_robustness.bodies(ctx, case)
        assert bodies and all(isinstance(b, bytes) for _, b in bodies)
        if case["category"] == "oversized":
            assert any(len(b) > 64 * 1024 for _, b in bodies) or "kids" in case["id"]
    again = [checks_robustness.bodies(ctx, c) for c in doc["cases"] if c["category"] == "random"]
    assert again == [checks_robustness.bodies(ctx, c) for c in doc["cases"] if c["category"] == "random"]  # seeded


class _Fake(http.server.BaseHTTPRequestHandler):
    answer: tuple[int, dict, bytes] = (500, {}, b"")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, body = self.answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    servers = []

    def start(status: int, headers: dict, body: bytes) -> str:
        handler = type("Handler", (_Fake,), {"answer": (status, headers, body)})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status, headers, body, problem", [
    (500, {"X-DRM-Error-Code": "INTERNAL_ERROR"}, b"oops", "HTTP 500"),
    (400, {}, b"", "not a documented stable code"),
    (400, {"X-DRM-Error-Code": "SOMETHING_ELSE"}, b"", "not a documented stable code"),
    (400, {"X-DRM-Error-Code": "MALFORMED_CHALLENGE"}, b'{"error": "plain JSON"}', "does not name"),
    (200, {}, b"", "HTTP 200"),
])
def test_robustness_fails_against_servers_that_answer_badly(fake_server, tmp_path, status, headers, body, problem):
    url = fake_server(status, headers, body)
    report = run_checks(url, [load_all()["ROB-001"]], systems=["widevine"], keys_dir=KEYS)
    result = report.results[0]
    assert result.status == FAILED and problem in result.reason
    cases = result.evidence["cases"]
    assert cases and all(not c["ok"] for c in cases)
    assert cases[0]["request"]["url"] == url + "/widevine/license" and cases[0]["response"]["status"] == status


def test_robustness_wants_the_case_code_and_the_dialect_shape(fake_server):
    from license_server.errors import DrmError, ErrorCode
    from license_server.protocols.widevine import codec

    error = codec.build_error(DrmError(ErrorCode.LICENSE_EXPIRED))  # a well-formed refusal, but the wrong code
    url = fake_server(403, {"X-DRM-Error-Code": "LICENSE_EXPIRED"}, error)
    result = run_checks(url, [load_all()["ROB-003"]], systems=["widevine"], keys_dir=KEYS).results[0]
    assert result.status == FAILED and "not one of ['CHALLENGE_TOO_LARGE']" in result.reason
    right = codec.build_error(DrmError(ErrorCode.CHALLENGE_TOO_LARGE))
    url = fake_server(413, {"X-DRM-Error-Code": "CHALLENGE_TOO_LARGE"}, right)
    assert run_checks(url, [load_all()["ROB-003"]], systems=["widevine"], keys_dir=KEYS).results[0].status == PASSED


# ------------------------------------------------------------------ device adapter

class CheatingAdapter:
    """A device that stores nothing, never expires anything and always plays."""

    def describe(self):
        return {"name": "cheating test device", "lifecycle_systems": ["widevine"]}

    def lifecycle_systems(self):
        return ("widevine",)

    def provision(self, **_):
        return object()

    def acquire(self, device, *, system, content_id, persistent, query="", server=None, token=None):
        rental, playback = (int(v) for v in query.removeprefix("?cfg=(rental:").rstrip(")").split(",playback:")) \
            if query else (0, 0)
        return Acquired("granted", None, "lic", "ksid", {"rental_duration": rental, "playback_duration": playback})

    def play(self, device, content_id):
        return Decision("play", None)

    def remove(self, device, content_id, *, online):
        return {}

    def sync(self, device, *, server=None):
        return {}

    def renew(self, device, content_id):
        return {"applied": False}

    def advance_clock(self, device, seconds):
        return 0

    def restart(self, device):
        return device

    def storage(self, device):
        return {"licenses": [], "destruction_records": [], "secure_clock": None}


def test_device_checks_fail_against_a_cheating_device(ctx):
    ctx.adapter = CheatingAdapter()
    ctx.capabilities = {"test-clock": True}
    checks = load_all()
    for check_id, fragment in (("OFF-001", "observed play"), ("OFF-002", "observed play"),
                               ("OFF-004", "gave play"), ("DES-001", "observed play"),
                               ("DES-003", "0 destruction record")):
        result = run_one(checks[check_id], "widevine", ctx)
        assert result.status == FAILED, (check_id, result.reason)
        assert fragment in result.reason, (check_id, result.reason)
        assert result.evidence["plays"] if check_id != "DES-003" else result.evidence["storage_after_restart"]


def test_device_checks_are_not_applicable_where_the_adapter_has_no_lifecycle(ctx):
    class WidevineOnly(CheatingAdapter):
        def lifecycle_systems(self):
            return ("widevine",)

    ctx.adapter = WidevineOnly()
    result = run_one(load_all()["DES-001"], "playready", ctx)
    assert result.status == NOT_APPLICABLE
    assert "does not implement the offline lifecycle of playready" in result.reason
    assert checks_device.DEVICE_SYSTEMS == load_all()["DES-001"].systems


def test_the_reference_adapter_reports_its_lifecycle_dialects(ctx):
    from conformance.device_adapter import EmulatorAdapter

    adapter = EmulatorAdapter(ctx)
    assert "widevine" in adapter.lifecycle_systems()
    assert adapter.describe()["lifecycle_systems"] == list(adapter.lifecycle_systems())


# ------------------------------------------------------------------ relay

def test_relay_forwards_until_it_is_taken_down(fake_server):
    url = fake_server(418, {"X-DRM-Error-Code": "X"}, b"teapot")
    with Relay(url) as relay:
        request = urllib.request.Request(relay.url + "/any", data=b"hello", method="POST")
        with pytest.raises(urllib.error.HTTPError) as answered:
            urllib.request.urlopen(request, timeout=5)
        assert answered.value.code == 418 and answered.value.read() == b"teapot"
        relay.down = True
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)) as dropped:
            urllib.request.urlopen(urllib.request.Request(relay.url + "/any", data=b"x", method="POST"), timeout=5)
        assert not isinstance(dropped.value, urllib.error.HTTPError)



def test_relay_keeps_the_namespace_path_of_its_target():
    """A run in a namespace (SERVER/ns/x) must reach that namespace through the relay, not the default one."""
    with Relay("http://127.0.0.1:9/ns/x/") as relay, Relay("http://127.0.0.1:9") as plain:
        assert relay.url.startswith("http://127.0.0.1:") and relay.url.endswith("/ns/x")
        assert plain.url.count("/") == 2  # no path: the default namespace, as before


# ------------------------------------------------------------------ screenshot

def test_screenshot_of_a_report_in_headless_chromium(temporary_check, tmp_path):
    from conformance import screenshot
    from conformance.report import write_reports

    missing = screenshot.missing_tools()
    if missing:
        pytest.skip("no browser tooling: " + ", ".join(missing))
    entry = temporary_check("TST-930", lambda c: Outcome.failed("shown", request={"url": "http://t"}))
    report = RunReport("http://t", "2027-01-01T00:00:00Z", {"version": "test"}, {})
    report.results = [run_one(entry, "widevine", Context("http://t", tmp_path))]
    page = write_reports(report, tmp_path / "out")[2]
    answer = screenshot.screenshot(page, tmp_path / "shot.png")
    png = (tmp_path / "shot.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and answer["height"] > 100
    assert json.loads(json.dumps(answer))["ok"]


# ------------------------------------------------------------------ capabilities

def test_devices_follow_the_server_clock_and_run_slightly_ahead(ctx):
    """A device behind the server would see a fresh license start in its future (NOT_YET_VALID)."""
    from conformance.dialects import make_device
    from conformance.target import DEVICE_LEAD
    from license_server.clock import wall_clock_now

    ctx.capabilities = {"server_clock_offset": -86400}  # a test clock moved a day back
    device = make_device(ctx, "L3")
    assert abs(device.now() - (wall_clock_now() - 86400 + DEVICE_LEAD)) <= 1 and DEVICE_LEAD > 0
    ctx.capabilities = {"server_clock_offset": 0}
    assert make_device(ctx, "L3").record.clock_offset == DEVICE_LEAD


def test_token_checks_are_not_applicable_without_token_support(ctx):
    ctx.capabilities = {"tokens": False}
    for check_id in ("TOK-001", "TOK-004"):
        result = run_one(load_all()[check_id], "widevine", ctx)
        assert result.status == NOT_APPLICABLE and "entitlement-token" in result.reason
