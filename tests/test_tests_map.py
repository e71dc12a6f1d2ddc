"""tests/README.md maps every module to the test files that import it; this keeps the map current.

Regenerate it with ``python tests/test_tests_map.py`` after adding or moving tests.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("license_server", "device_emulator", "conformance")
MAP = ROOT / "tests" / "README.md"
HEADER = """# Where the tests of each module are

Tests are grouped by feature (`tests/test_<feature>.py`) and by dialect (`tests/fairplay/`,
`tests/playready/`); the neutral core's unit tests are in `tests/core/`, the browser tests in
`tests/browser/` and the property-based fuzz suite in `tests/fuzz/`. The table lists, for each
module, the test files that import it (generated from the imports by `python tests/test_tests_map.py`;
end-to-end tests that drive a module through HTTP or a CLI also cover modules they do not import).

| module | tests |
|---|---|
"""


def _imported_modules(test: Path) -> set[Path]:
    found: set[Path] = set()
    for node in ast.walk(ast.parse(test.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if name.split(".")[0] not in PACKAGES:
                continue
            path = Path(*name.split("."))
            for candidate in (path.with_suffix(".py"), path / "__init__.py"):
                if (ROOT / candidate).exists():
                    found.add(candidate)
    return found


def render() -> str:
    covered: dict[Path, set[str]] = defaultdict(set)
    for test in sorted((ROOT / "tests").rglob("test_*.py")):
        if "node_modules" in test.parts:
            continue
        for module in _imported_modules(test):
            covered[module].add(test.relative_to(ROOT / "tests").as_posix())
    rows = [f"| `{module.as_posix()}` | {', '.join(f'`{t}`' for t in sorted(tests))} |"
            for module, tests in sorted(covered.items())]
    return HEADER + "\n".join(rows) + "\n"


def test_the_map_of_tests_is_current():
    assert MAP.read_text(encoding="utf-8") == render(), "regenerate it: python tests/test_tests_map.py"


if __name__ == "__main__":
    MAP.write_text(render(), encoding="utf-8")
