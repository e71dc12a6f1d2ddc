"""`serve --store URL`: the URL forms, and startup errors as one clear line with exit 2 and no password."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from license_server.store_url import parse_store_url, redact
from tests.conftest import KEYS, ServerProcess
from tests.test_serve_startup import assert_one_clear_line, serve


def test_url_forms() -> None:
    assert parse_store_url("sqlite:///data/x.db").path == Path("data/x.db")
    assert parse_store_url("sqlite:////var/x.db").path == Path("/var/x.db")
    assert parse_store_url("postgres://u@h:5432/db").kind == "postgresql"
    assert parse_store_url("postgresql://u:pw@h/db").shown == "postgresql://u:***@h/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    for bad in ("mysql://h/db", "sqlite://host/x.db", "sqlite:x.db", "postgresql://u@h", "postgresql://u@h:x/db"):
        with pytest.raises(ValueError):
            parse_store_url(bad)


@pytest.mark.parametrize(("url", "fragment"), [
    ("mysql://u@h/db", "--store: the store URL must start with"),
    ("postgresql://u@127.0.0.1/", "--store: name the database"),
])
def test_bad_store_urls(tmp_path: Path, url: str, fragment: str) -> None:
    assert_one_clear_line(serve(tmp_path / "data", "--keys", str(KEYS), "--port", "0", "--store", url), fragment)


def test_unreachable_postgres_is_one_line_without_the_password(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = serve(tmp_path / "data", "--keys", str(KEYS), "--port", "0",
                   "--store", f"postgresql://drm:hunter2secret@127.0.0.1:{port}/drm")
    assert_one_clear_line(result, f"cannot open the store postgresql://drm:***@127.0.0.1:{port}/drm")
    assert "hunter2secret" not in result.stderr + result.stdout


def test_group_mode_is_sqlite_only(tmp_path: Path, postgres_db: str) -> None:
    result = serve(tmp_path / "data", "--keys", str(KEYS), "--port", "0", "--store", postgres_db,
                   "--store-mode", "group")
    assert_one_clear_line(result, "--store-mode group")


def test_a_sqlite_url_names_the_file(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "state.db"
    target.parent.mkdir()
    server = ServerProcess(tmp_path / "data", "--store", f"sqlite:///{target}")
    try:
        assert target.exists() and not (tmp_path / "data" / "license-server.db").exists()
        with urllib.request.urlopen(server.url + "/ns/side/healthz", timeout=10) as reply:
            assert reply.status == 200
        # the other namespaces live beside the file, not in the data dir
        assert (target.parent / "namespaces" / "side" / "license-server.db").exists()
        assert not (tmp_path / "data" / "namespaces").exists()
    finally:
        server.stop()
