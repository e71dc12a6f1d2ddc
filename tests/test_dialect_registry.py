"""The dialect registry: every part of every dialect is a true reference, and the device side
iterates it (one dispatcher, one offline dispatch, conformance clients, no forbidden imports)."""

from __future__ import annotations

import ast
import inspect
import types
from pathlib import Path

import pytest

from conformance.catalog import DEVICE_SYSTEMS, SYSTEMS, load_all
from device_emulator.cdm.base import Cdm
from device_emulator.errors import CdmError, NotSupported
from device_emulator.offline import OfflineAdapter, adapter_for
from license_server import dialects

PROJECT = Path(__file__).resolve().parent.parent
PARTS = ("codec", "cfg_grammar", "routes", "device_cdm", "offline_adapter", "conformance_client")
CASES = [pytest.param(d, part, id=f"{d.name}-{part}") for d in dialects.REGISTRY for part in PARTS]


@pytest.mark.parametrize(("dialect", "part"), CASES)
def test_every_reference_of_every_dialect_loads(dialect: dialects.Dialect, part: str):
    loaded = dialect.load(part)
    if part == "codec":
        assert isinstance(loaded, types.ModuleType)
    elif part in ("cfg_grammar", "routes"):
        assert callable(loaded)
    elif part == "device_cdm":
        assert inspect.isclass(loaded) and issubclass(loaded, Cdm) and not inspect.isabstract(loaded)
        assert loaded.system == dialect.name
    elif part == "offline_adapter":
        assert isinstance(loaded, OfflineAdapter) and loaded.system == dialect.name
    else:
        assert inspect.isclass(loaded) and loaded().name == dialect.name
        assert loaded().path == dialect.license_path


def test_names_are_unique_and_lookups_agree():
    assert len(set(dialects.NAMES)) == len(dialects.REGISTRY) == 4
    for dialect in dialects.REGISTRY:
        assert dialects.dialect(dialect.name) is dialect and adapter_for(dialect.name).system == dialect.name
    with pytest.raises(KeyError, match="known: widevine"):
        dialects.dialect("nosuch")


def test_unknown_systems_are_refused_by_the_device_dispatchers(tmp_path):
    from device_emulator.acquire import cdm_for

    with pytest.raises(NotSupported) as caught:
        adapter_for("nosuch")
    assert caught.value.code == "UNSUPPORTED_SYSTEM" and isinstance(caught.value, CdmError)
    with pytest.raises(NotSupported):
        cdm_for(None, "nosuch")  # type: ignore[arg-type]


def test_conformance_iterates_the_registry():
    assert SYSTEMS == dialects.NAMES
    assert DEVICE_SYSTEMS == tuple(d.name for d in dialects.REGISTRY if d.load("device_cdm").device_identity)
    assert "clearkey" not in DEVICE_SYSTEMS  # Clear Key has no device identity
    checks = load_all()
    assert all(set(check.systems) <= set(SYSTEMS) for check in checks.values())


def test_conformance_references_cite_public_specs_or_the_project_docs():
    for check in load_all().values():
        assert "DESIGN" not in check.reference and "§" not in check.reference, check.id
        cited = [part for part in ("https://", "docs/", "README.md") if part in check.reference]
        assert cited, (check.id, check.reference)
    for doc in check_doc_paths():
        assert (PROJECT / doc).is_file(), doc


def check_doc_paths() -> set[str]:
    import re

    return {m for check in load_all().values() for m in re.findall(r"docs/[\w-]+\.md", check.reference)}


FORBIDDEN = ("license_server.store", "license_server.downloads", "license_server.handlers")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_device_emulator_imports_nothing_from_the_servers_storage_downloads_or_handlers():
    offenders = {
        str(path.relative_to(PROJECT)): sorted(n for n in _imports(path) if n.startswith(FORBIDDEN))
        for path in (PROJECT / "device_emulator").rglob("*.py")
    }
    assert {p: names for p, names in offenders.items() if names} == {}


def test_the_dispatchers_name_no_dialect():
    """acquire.py and offline/__init__.py dispatch through the registry, not through a list of names."""
    for relative in ("device_emulator/acquire.py", "device_emulator/offline/__init__.py"):
        source = (PROJECT / relative).read_text(encoding="utf-8")
        for name in ("fairplay", "playready"):
            assert f'"{name}"' not in source, (relative, name)
