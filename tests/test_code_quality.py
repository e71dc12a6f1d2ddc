"""ruff and mypy run inside the test command, so style and types cannot drift.

Both read their configuration from pyproject.toml: ruff's rule set at 120 columns, and mypy over
the three packages, strict for ``license_server.core`` and ``license_server.protocols``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize("tool", ["ruff", "mypy"])
def test_tool_is_installed(tool: str):
    assert run(tool, "--version").returncode == 0, f"{tool} is part of the test extra: pip install -e '.[test]'"


def test_ruff_is_clean():
    result = run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]


def test_mypy_is_clean():
    result = run("mypy", "--no-incremental")
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
