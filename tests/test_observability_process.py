"""Observability of real ``license-server serve`` processes: JSON logs, no secrets, metrics over workers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from license_server.keyring import load_keyring
from license_server.protocols import clearkey
from license_server.tokens import TOKEN_HEADER
from tests.conftest import KEYS, ServerProcess, free_port, run_cli

REPO = Path(__file__).resolve().parent.parent
SECRET_TOKEN = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0LXBheWxvYWQtdGhhdC1tdXN0LW5vdC1sZWFr.c2lnbmF0dXJl"


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        error.read()
        return error.code, dict(error.headers)


def license_request() -> bytes:
    title = load_keyring(KEYS).catalog.title("demo-movie")
    return clearkey.build_license_request([track.kid for track in title.tracks])


def granted_total(server: ServerProcess) -> float:
    request = urllib.request.Request(server.url + "/metrics", headers=server.admin_headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "drm_licenses_granted_total" and sample.labels.get("dialect") == "clearkey")


def json_lines(server: ServerProcess) -> list[dict]:
    lines = server.log.read_text().splitlines()
    docs = [json.loads(line) for line in lines if line.strip()]  # every line parses, or this raises
    for doc in docs:
        assert {"ts", "level", "logger", "message"} <= doc.keys(), doc
    return docs


def test_json_logs_carry_the_request_id_and_no_secret(server_process):
    server = server_process("--log-format", "json")
    status, headers = post(server.url + "/clearkey/license", license_request(),
                           {"X-Request-Id": "ci-job-42", TOKEN_HEADER: SECRET_TOKEN})
    assert headers["X-Request-Id"] == "ci-job-42"
    refused_code, refused_status = headers["X-DRM-Error-Code"], status
    assert status in (401, 403) and refused_code.startswith("TOKEN_")  # the fake token is refused
    status, headers = post(server.url + "/clearkey/license", license_request())
    assert status == 200
    generated = headers["X-Request-Id"]
    urllib.request.urlopen(urllib.request.Request(server.url + "/metrics", headers=server.admin_headers)).read()
    server.stop()
    docs = json_lines(server)
    access = {doc["request_id"]: doc for doc in docs if doc["logger"] == "license_server.access"}
    refused, ok = access["ci-job-42"], access[generated]
    assert refused["route"] == ok["route"] == "clearkey.license" and refused["method"] == "POST"
    assert refused["dialect"] == "clearkey" and refused["error_code"] == refused_code
    assert refused["status"] == refused_status
    assert ok["status"] == 200 and "error_code" not in ok and ok["duration_ms"] >= 0
    assert any(doc.get("request_id") == generated and doc["logger"] != "license_server.access" and
               doc["message"].startswith("granted clearkey") for doc in docs)  # the service's own line, same id
    text = server.log.read_text()
    assert SECRET_TOKEN not in text and SECRET_TOKEN.split(".")[1] not in text
    assert server.admin_token not in text


def test_a_generated_admin_token_stays_out_of_a_json_log(tmp_path):
    data, port = tmp_path / "data", free_port()
    log = tmp_path / "server.log"
    proc = subprocess.Popen([sys.executable, "-m", "license_server.cli", "serve", "--port", str(port),
                             "--data-dir", str(data), "--keys", str(KEYS), "--log-format", "json"],
                            stdout=subprocess.DEVNULL, stderr=log.open("wb"), cwd=REPO)
    try:
        deadline = time.monotonic() + 20
        while not (data / "admin-token").exists() or not log.read_text().count("Running on"):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)
    token = (data / "admin-token").read_text().strip()
    text = log.read_text()
    assert len(token) >= 40 and token not in text
    assert [json.loads(line)["level"] for line in text.splitlines() if line.strip()]


def test_log_format_is_in_the_serve_help():
    result = run_cli("serve", "--help", module="license_server.cli")
    assert result.returncode == 0 and "--log-format [text|json]" in result.stdout


def test_metrics_sum_over_workers(server_process):
    server = server_process("--workers", "2")
    body = license_request()
    pids = set()
    for _ in range(24):  # new connections each: the kernel spreads them over both workers
        status, headers = post(server.url + "/clearkey/license", body)
        assert status == 200
        with urllib.request.urlopen(server.url + "/healthz", timeout=10) as response:
            pids.add(json.loads(response.read())["process"])
    assert len(pids) == 2, "both workers should have served"
    for _ in range(6):  # whichever worker answers the scrape, it reports the sum
        assert granted_total(server) == 24
