"""Run `device-emulator` commands in this process (click's runner): the real command code
with its real exit codes and output, without paying for a Python start-up per command.
Tests that need a separate process use tests.conftest.run_cli."""

from __future__ import annotations

import json
from dataclasses import dataclass

from click.testing import CliRunner

from device_emulator.cli import main


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def device_cli(*args: str) -> Ran:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


def device_json(*args: str, expect: int = 0) -> dict | list:
    ran = device_cli(*args)
    assert ran.returncode == expect, (ran.returncode, ran.stdout, ran.stderr)
    return json.loads(ran.stdout)
