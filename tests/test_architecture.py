"""The house rules of the architecture, checked on the source tree (issue 12, DESIGN §2 of the team).

Dependencies point inward: the core knows no store, no wire format and no web framework; the
server never imports the device emulator; handlers stay thin and modules stay small. These tests
read the source with :mod:`ast`, so they see every import, including ones inside functions.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("license_server", "device_emulator", "conformance")
GENERATED = {"license_protocol_pb2.py"}
MAX_MODULE_LINES = 500
MAX_HANDLER_LINES = 150


def modules(package: str) -> Iterator[Path]:
    for path in sorted((ROOT / package).rglob("*.py")):
        if path.name not in GENERATED:
            yield path


def imported_names(path: Path) -> set[str]:
    """Every module name an ``import`` or ``from ... import`` in the file names (absolute imports)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def offending(paths: Iterator[Path], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in paths:
        for name in sorted(imported_names(path)):
            if any(name == prefix or name.startswith(prefix + ".") for prefix in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_the_core_imports_no_store_no_wire_format_and_no_web_framework():
    forbidden = ("license_server.store", "license_server.sqlite_support", "license_server.handlers",
                 "license_server.protocols", "sqlite3", "sqlite_utils", "aiohttp", "device_emulator")
    assert offending(modules("license_server/core"), forbidden) == []


def test_the_server_never_imports_the_device_emulator_or_the_conformance_suite():
    assert offending(modules("license_server"), ("device_emulator", "conformance")) == []


def test_the_protocols_do_no_io():
    forbidden = ("license_server.store", "license_server.handlers", "aiohttp", "sqlite3", "sqlite_utils",
                 "urllib.request", "socket", "device_emulator")
    assert offending(modules("license_server/protocols"), forbidden) == []


def test_the_device_emulator_does_not_reach_into_the_servers_storage_or_handlers():
    forbidden = ("license_server.store", "license_server.downloads", "license_server.handlers")
    assert offending(modules("device_emulator"), forbidden) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_over_500_lines(package: str):
    long = [f"{p.relative_to(ROOT)}: {n}" for p in modules(package)
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert long == []


def test_handlers_are_thin():
    long = [f"{p.name}: {n}" for p in modules("license_server/handlers")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_HANDLER_LINES]
    assert long == []
