"""The conformance catalog: named checks, their metadata, outcomes and the registry.

A check is data (id, title, dialects, severity, reference, needs) plus a function
that runs it against a target through a :class:`Context`. The function returns an
:class:`Outcome`; it never decides "passed" by default: a check that raises is
recorded as ``error`` by the runner and counts as failed.
"""

from __future__ import annotations

import fnmatch
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

PASSED, FAILED, ERROR, NOT_APPLICABLE = "passed", "failed", "error", "not_applicable"
STATUSES = (PASSED, FAILED, ERROR, NOT_APPLICABLE)
SEVERITIES = ("critical", "high", "medium", "low")


@dataclass
class Outcome:
    """What one check observed: a status, a reason, and the evidence behind it."""

    status: str
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def passed(cls, reason: str = "", **evidence: Any) -> "Outcome":
        return cls(PASSED, reason, evidence)

    @classmethod
    def failed(cls, reason: str, **evidence: Any) -> "Outcome":
        return cls(FAILED, reason, evidence)

    @classmethod
    def not_applicable(cls, reason: str, **evidence: Any) -> "Outcome":
        return cls(NOT_APPLICABLE, reason, evidence)


@dataclass
class Context:
    """What a check may use: the target URL, a scratch directory, keys, target capabilities."""

    server: str
    workdir: Path
    keys_dir: Path | None = None
    capabilities: dict[str, Any] = field(default_factory=dict)
    _keyring: Any = None
    _counter: int = 0

    @property
    def keyring(self):
        if self._keyring is None:
            from license_server.keyring import load_keyring

            self._keyring = load_keyring(self.keys_dir)
        return self._keyring

    def scratch(self, prefix: str) -> Path:
        """A fresh directory under the work directory."""
        self._counter += 1
        return Path(tempfile.mkdtemp(prefix=f"{prefix}-{self._counter}-", dir=self.workdir))

    def url(self, path: str) -> str:
        return self.server.rstrip("/") + path


CheckFn = Callable[[Context], Outcome]


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    systems: tuple[str, ...]
    severity: str
    reference: str
    run: CheckFn
    needs: tuple[str, ...] = ()
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "systems": list(self.systems), "severity": self.severity,
                "reference": self.reference, "needs": list(self.needs), "description": self.description}


REGISTRY: dict[str, Check] = {}


def check(id: str, title: str, *, systems: tuple[str, ...], severity: str, reference: str,
          needs: tuple[str, ...] = ()) -> Callable[[CheckFn], CheckFn]:
    """Register the decorated function as a check (its docstring is the description)."""
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity}")

    def register(fn: CheckFn) -> CheckFn:
        if id in REGISTRY:
            raise ValueError(f"duplicate check id {id}")
        REGISTRY[id] = Check(id, title, systems, severity, reference, fn, needs,
                             " ".join((fn.__doc__ or "").split()))
        return fn

    return register


def load_all() -> dict[str, Check]:
    """Import every check module (registration happens on import)."""
    from conformance import checks_widevine, checks_widevine_lifecycle  # noqa: F401

    return dict(sorted(REGISTRY.items(), key=lambda item: _sort_key(item[0])))


_FAMILY_ORDER = ("ATT", "SEC", "LIC", "OFF", "DES", "ROB")


def _sort_key(check_id: str) -> tuple[int, str]:
    family = check_id.split("-")[0]
    return (_FAMILY_ORDER.index(family) if family in _FAMILY_ORDER else 99, check_id)


def select(checks: dict[str, Check], *, systems: list[str] | None = None,
           only: list[str] | None = None) -> list[Check]:
    """Checks for the given dialects whose id matches one of the ``only`` glob patterns."""
    chosen = []
    for c in checks.values():
        if systems and not set(systems) & set(c.systems):
            continue
        if only and not any(fnmatch.fnmatchcase(c.id, pattern.upper()) for pattern in only):
            continue
        chosen.append(c)
    return chosen
