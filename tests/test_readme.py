"""The README runs as written: its ```bash blocks, in order, against a fresh data dir.

Every command line of every ```bash block runs in one temporary working directory (holding a
copy of `keys/`), in README order. Lines that install software are skipped; a line that starts
the long-running server (`license-server serve ...`) makes the test stop the server it runs and
spawn that command itself on a free port (the README's 127.0.0.1:8080 is rewritten to it). Each
command must exit with the status the README implies: 0, or the code it states next to it
(`(exit N)`); a `# refused: CODE` comment means exit 3 with CODE in the output. A block that
cannot run in a test is preceded by `<!-- readme-test: skip (reason) -->`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import click
import pytest

from tests.conftest import KEYS, PROJECT, free_port

README = PROJECT / "README.md"
SKIP_MARK = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->")
FENCE = re.compile(r"^```(?P<lang>\S*)\s*$")
INSTALLS = ("pip install", "bash .ci/setup", "apt-get", "npm install")
TOOLS = {"chromium": ("chromium", "chromium-browser"), "packager": ("packager", "shaka-packager"),
         "ffmpeg": ("ffmpeg",)}
CLIS = ("license-server", "device-emulator", "drm-conformance")


@dataclass
class Command:
    line: str
    lineno: int
    expect: int = 0
    codes: list[str] = field(default_factory=list)


@dataclass
class Block:
    lineno: int
    commands: list[Command]
    skip: str | None = None


def _split_comment(line: str) -> tuple[str, str]:
    """Split `cmd  # comment` at the first `#` outside quotes and not inside a word."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def _expectation(command: Command, comment: str) -> None:
    if m := re.search(r"\(exit(?: code)? (\d+)\)", comment):
        command.expect = int(m.group(1))
    elif re.match(r"refused\b", comment):
        command.expect = 3
    command.codes += re.findall(r"refused(?: \(exit \d+\))?: ([A-Z][A-Z_]+)", comment)


def parse_blocks(text: str) -> list[Block]:
    """The ```bash blocks of the README, each a list of commands with their expected exit."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or not m.group("lang"):
            i += 1 if not m else _skip_fence(lines, i)
            continue
        start, lang = i, m.group("lang")
        body: list[tuple[int, str]] = []
        i += 1
        while not lines[i].startswith("```"):
            body.append((i + 1, lines[i]))
            i += 1
        i += 1
        if lang != "bash":
            continue
        prev = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        mark = SKIP_MARK.search(prev)
        blocks.append(Block(start + 1, _commands(body), mark.group("reason") if mark else None))
    return blocks


def _skip_fence(lines: list[str], i: int) -> int:
    j = i + 1
    while j < len(lines) and not lines[j].startswith("```"):
        j += 1
    return j - i + 1


def _commands(body: list[tuple[int, str]]) -> list[Command]:
    commands: list[Command] = []
    pending = ""
    attached = False  # comment lines right after a command (no blank line) speak of its result
    for lineno, raw in body:
        code, comment = _split_comment(raw)
        if not code:
            if attached and comment and not pending:
                _expectation(commands[-1], comment)
            attached = attached and bool(comment)
            continue
        if code.endswith("\\"):
            pending += code[:-1] + " "
            continue
        commands.append(Command(pending + code, lineno))
        pending, attached = "", True
        _expectation(commands[-1], comment)
    return commands


class Runner:
    """Runs README commands in one working directory, owning the server they talk to."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.port = free_port()
        self.server: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "PYTHONPATH": str(PROJECT)}
        self.log: list[str] = []

    def substitute(self, line: str) -> str:
        return line.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")

    def serve(self, args: list[str]) -> None:
        self.stop()
        argv = [sys.executable, "-m", "license_server.cli", "serve", *args, "--port", str(self.port)]
        self.server = subprocess.Popen(argv, cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL,
                                       stderr=(self.cwd / f"server-{time.monotonic_ns()}.log").open("wb"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.server.poll() is None, f"server exited: {argv}"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"server did not start: {argv}")

    def stop(self) -> None:
        if self.server is not None:
            self.server.send_signal(signal.SIGINT)
            try:
                self.server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
            self.server = None

    def run(self, command: Command) -> None:
        for part in (p.strip() for p in command.line.split("&&")):
            if part.startswith(INSTALLS) or part.startswith("python -m pytest"):
                continue  # installs software, or is the test suite itself
            words = shlex.split(part.rstrip("&").strip())
            if words[:2] == ["license-server", "serve"]:
                self.serve(words[2:])
                continue
            print(f"$ {part}")
            self.shell(self.substitute(part), command)

    def shell(self, part: str, command: Command) -> None:
        assign = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=\$\((.*)\)", part)
        script = assign.group(2) if assign else part
        result = subprocess.run(["bash", "-c", script], cwd=self.cwd, env=self.env, capture_output=True,
                                text=True, timeout=180)
        where = f"README.md:{command.lineno}: {part}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        assert result.returncode == command.expect, f"exit {result.returncode}, README implies " \
                                                    f"{command.expect}\n{where}"
        for code in command.codes:
            assert code in result.stdout + result.stderr, f"{code} not in the output\n{where}"
        if assign:
            self.env[assign.group(1)] = result.stdout.strip()


def _missing_tools(block: Block) -> list[str]:
    text = " ".join(c.line for c in block.commands)
    needs = []
    if "package " in text or "--sample" in text:
        needs.append("packager")
    if "play " in text and "download" in text:
        needs.append("ffmpeg")
    return [n for n in needs if not any(shutil.which(t) for t in TOOLS[n])]


def test_readme_blocks_are_marked_and_parsed() -> None:
    blocks = parse_blocks(README.read_text())
    assert len(blocks) >= 8
    skipped = [b for b in blocks if b.skip]
    assert len(skipped) <= 2, [(b.lineno, b.skip) for b in skipped]
    assert blocks[0].commands[0].line == "pip install -e . && license-server serve"
    assert blocks[1].commands[0].line == "bash .ci/setup && python -m pytest"


def test_readme_commands_run_in_order(tmp_path: Path) -> None:
    for cli in CLIS:
        if shutil.which(cli) is None:
            pytest.skip(f"{cli} is not on PATH (pip install -e .)")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(KEYS, work / "keys")
    runner = Runner(work)
    try:
        for block in parse_blocks(README.read_text()):
            if block.skip or _missing_tools(block):
                runner.log.append(f"skipped block at line {block.lineno}: {block.skip or _missing_tools(block)}")
                continue
            for command in block.commands:
                runner.run(command)
    finally:
        runner.stop()


def _subcommands(text: str) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for m in re.finditer(r"\b(license-server|device-emulator|drm-conformance) ([a-z][a-z0-9-]*)(?: ([a-z][a-z-]*))?",
                         text):
        found.add(tuple(w for w in m.groups() if w))
    return found


def test_every_subcommand_in_the_readme_exists() -> None:
    from click.testing import CliRunner

    for words in sorted(_subcommands(README.read_text())):
        group = _group(words[0])
        first = CliRunner().invoke(group, [words[1], "--help"])
        assert first.exit_code == 0, (words, first.output)
        if len(words) > 2 and "Commands:" in first.output:
            second = CliRunner().invoke(group, [words[1], words[2], "--help"])
            assert second.exit_code == 0, (words, second.output)


def _group(cli: str) -> click.Command:
    import conformance.cli
    import device_emulator.cli
    import license_server.cli

    groups = {"license-server": license_server.cli, "device-emulator": device_emulator.cli,
              "drm-conformance": conformance.cli}
    return cast(click.Command, groups[cli].main)
