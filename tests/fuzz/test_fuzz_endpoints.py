"""Property-based fuzzing of every endpoint (issue 20, "make it stay fixed").

For any input: never a 5xx except PlayReady's SOAP faults (HTTP 500 with a SOAP Fault body and
our X-DRM-Error-Code, PlayReady's native error shape), always our stable error code on a
refusal (X-DRM-Error-Code or a JSON ``error.code``), and a refused request leaves the licenses
table as it was. Bodies go plain and chunked. ``DRM_FUZZ_EXAMPLES`` raises the example count.
"""

from __future__ import annotations

import base64
import itertools
import json
import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from license_server import dialects
from tests.admin_support import ADMIN_TOKEN
from tests.fuzz.conftest import EXAMPLES, FuzzServer, Reply

FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LICENSE_PATHS = {d.name: d.license_path for d in dialects.REGISTRY}
ROUTES = [
    ("GET", "/healthz"), ("GET", "/openapi.json"), ("GET", "/fairplay/certificate"),
    ("POST", "/downloads"), ("GET", "/media/demo-movie/manifest.mpd?expires=1&sig=00"),
    ("OPTIONS", "/clearkey/license"),
    ("GET", "/admin/licenses"), ("GET", "/admin/licenses/x"), ("POST", "/admin/licenses/x/expire"),
    ("GET", "/admin/devices"), ("GET", "/admin/devices/x"), ("GET", "/admin/revocations"),
    ("POST", "/admin/revocations"), ("DELETE", "/admin/revocations/device/x"),
    ("GET", "/admin/faults"), ("POST", "/admin/faults"), ("DELETE", "/admin/faults/x"),
    ("GET", "/admin/rights"), ("PUT", "/admin/rights"), ("GET", "/admin/catalog"),
    ("GET", "/admin/clock"), ("POST", "/admin/clock"),
] + [("POST", path) for path in LICENSE_PATHS.values()]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


token_headers = st.builds(
    lambda header, claims, sig: ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()),
                                          _b64(sig)]),
    st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit"]), json_values, max_size=3),
    st.dictionaries(st.sampled_from(["exp", "nbf", "iat", "jti", "sub", "policy", "device_cap", "content"]),
                    json_values, max_size=4),
    st.binary(max_size=64),
) | st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=80)  # a well-formed header


def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Flip, delete or insert bytes at positions taken modulo the length."""
    buf = bytearray(data)
    for kind, position, value in edits:
        if not buf:
            buf.append(value)
            continue
        index = position % len(buf)
        if kind == 0:
            buf[index] ^= value or 1
        elif kind == 1:
            del buf[index:index + 1 + value % 8]
        else:
            buf[index:index] = bytes([value]) * (1 + value % 4)
    return bytes(buf)


edits = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2**20), st.integers(0, 255)), min_size=1, max_size=6)


def check(server: FuzzServer, reply: Reply, path: str, before: str) -> None:
    code = reply.headers.get("x-drm-error-code")
    if reply.status >= 500:
        fault = path == LICENSE_PATHS["playready"] and reply.status == 500 and b"Fault>" in reply.body
        assert fault and code, (reply.status, path, reply.body[:300])
    if reply.status >= 400:
        if code is None:
            doc = json.loads(reply.body)
            code = doc["error"]["code"]
        assert code and code.isupper(), (reply.status, path, reply.body[:300])
        assert server.licenses_digest() == before, (reply.status, path, code)


def send(server: FuzzServer, method: str, path: str, body: bytes | None, headers: dict[str, str],
         chunked: bool, cuts: list[int]) -> None:
    before = server.licenses_digest()
    parts: list[bytes] | bytes | None = body
    if chunked and body:
        points = sorted({c % len(body) for c in cuts} | {0, len(body)})
        parts = [body[a:b] for a, b in itertools.pairwise(points) if b > a]
    reply = server.request(method, path, parts, headers, chunked=chunked and bool(body))
    check(server, reply, path, before)


@FUZZ
@given(route=st.sampled_from(ROUTES), body=st.one_of(st.none(), st.binary(max_size=512),
                                                     json_values.map(lambda v: json.dumps(v).encode())),
       admin=st.booleans(), token=st.none() | token_headers, chunked=st.booleans(),
       cuts=st.lists(st.integers(0, 4096), max_size=4))
def test_any_body_on_any_route(fuzz_server, route, body, admin, token, chunked, cuts) -> None:
    method, path = route
    headers = {"Content-Type": "application/json"} if body and body[:1] in b"{[\"tfn-0123456789" else {}
    if admin:
        headers.update(AUTH)
    if token is not None:
        headers["X-DRM-Token"] = token
    send(fuzz_server, method, path, body if method != "GET" else None, headers, chunked, cuts)


@FUZZ
@given(system=st.sampled_from(list(LICENSE_PATHS)), which=st.integers(0, 1), edits=edits, chunked=st.booleans(),
       cuts=st.lists(st.integers(0, 4096), max_size=4), token=st.none() | token_headers)
def test_mutated_challenges_of_every_dialect(fuzz_server, system, which, edits, chunked, cuts, token) -> None:
    outgoing = fuzz_server.challenges[system][which]
    headers = {"Content-Type": outgoing.content_type, **outgoing.headers}
    if token is not None:
        headers["X-DRM-Token"] = token
    send(fuzz_server, "POST", LICENSE_PATHS[system], mutate(outgoing.body, edits), headers, chunked, cuts)


@FUZZ
@given(route=st.sampled_from([r for r in ROUTES if r[1].startswith("/admin/") and r[0] != "GET"]),
       body=json_values, chunked=st.booleans(), cuts=st.lists(st.integers(0, 4096), max_size=4))
def test_admin_json_with_a_valid_token(fuzz_server, route, body, chunked, cuts) -> None:
    method, path = route
    send(fuzz_server, method, path, json.dumps(body).encode(), {"Content-Type": "application/json", **AUTH},
         chunked, cuts)


def test_raw_socket_chunked_challenge(fuzz_server) -> None:
    """A valid Clear Key request in odd-sized chunks over a raw socket is read whole and answered 200."""
    outgoing = fuzz_server.challenges["clearkey"][0]
    body = outgoing.body
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:1], body[1:7], body[7:]) if part)
    request = (f"POST {LICENSE_PATHS['clearkey']} HTTP/1.1\r\nHost: fuzz\r\nContent-Type: {outgoing.content_type}\r\n"
               "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode() + chunks + b"0\r\n\r\n"
    with socket.create_connection((fuzz_server.host, fuzz_server.port), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert b" 200 " in status_line, answer[:400]
