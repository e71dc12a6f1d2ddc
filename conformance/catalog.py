"""The conformance catalog: named checks, their metadata, outcomes and the registry.

A check is data (id, title, dialects, severity, reference, needs) plus one
function per dialect that runs it against a target through a :class:`Context`.
A dialect may instead carry a fixed *not applicable* reason (e.g. Clear Key has
no device identity, so attestation checks do not apply to it).

Functions return an :class:`Outcome`; nothing is "passed" by default: a check
that raises is recorded as ``error`` by the runner and counts as failed. A
check may raise :class:`NotApplicable` when it finds out at run time that it
cannot apply (e.g. the device adapter has no lifecycle for that dialect).

Adding a dialect to an existing check is one function::

    @implements("OFF-001", "fairplay")
    def storage_window_fairplay(ctx: Context) -> Outcome: ...
"""

from __future__ import annotations

import fnmatch
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from license_server import dialects

PASSED, FAILED, ERROR, NOT_APPLICABLE = "passed", "failed", "error", "not_applicable"
STATUSES = (PASSED, FAILED, ERROR, NOT_APPLICABLE)
SEVERITIES = ("critical", "high", "medium", "low")
SYSTEMS: tuple[str, ...] = dialects.NAMES
"""Every dialect of the registry, in its order."""
DEVICE_SYSTEMS: tuple[str, ...] = tuple(d.name for d in dialects.REGISTRY if d.load("device_cdm").device_identity)
"""The dialects whose requests carry a device identity (every one but Clear Key)."""
FAMILIES = {
    "ATT": "attestation", "SEC": "security levels and outputs", "LIC": "licenses", "OFF": "offline expiry",
    "DES": "destruction", "TOK": "tokens and rights", "STR": "concurrent streams", "ROB": "robustness",
}
CLEARKEY_NO_IDENTITY = ("W3C Clear Key has no device identity, certificate or attestation evidence "
                        "(EME 'org.w3.clearkey'): there is nothing to verify or refuse")


@dataclass
class Outcome:
    """What one check observed: a status, a reason, and the evidence behind it."""

    status: str
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def passed(cls, reason: str = "", **evidence: Any) -> Outcome:
        return cls(PASSED, reason, evidence)

    @classmethod
    def failed(cls, reason: str, **evidence: Any) -> Outcome:
        return cls(FAILED, reason, evidence)

    @classmethod
    def not_applicable(cls, reason: str, **evidence: Any) -> Outcome:
        return cls(NOT_APPLICABLE, reason, evidence)


class NotApplicable(Exception):
    """Raised inside a check that finds it cannot apply to this target or dialect."""

    def __init__(self, reason: str, **evidence: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.evidence = evidence


@dataclass
class Context:
    """What a check may use: the target, the dialect under test, scratch space, keys, capabilities.

    ``admin_token`` authenticates calls to the target's ``/admin/`` API;
    ``data_dir`` is set only when the runner spawned the server (it may then
    write the revocations document in its store); ``adapter`` drives devices (device checks).
    """

    server: str
    workdir: Path
    keys_dir: Path | None = None
    capabilities: dict[str, Any] = field(default_factory=dict)
    system: str = "widevine"
    admin_token: str | None = None
    data_dir: Path | None = None
    adapter: Any = None
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

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}


CheckFn = Callable[[Context], Outcome]


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: str
    reference: str
    needs: tuple[str, ...] = ()
    description: str = ""
    impls: dict[str, CheckFn] = field(default_factory=dict, compare=False)
    not_applicable: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def systems(self) -> tuple[str, ...]:
        """Every dialect the check covers (implemented or not applicable), in catalog order."""
        named = set(self.impls) | set(self.not_applicable)
        return tuple(s for s in SYSTEMS if s in named) + tuple(sorted(named - set(SYSTEMS)))

    @property
    def family(self) -> str:
        return FAMILIES.get(self.id.split("-")[0], "other")

    def run(self, ctx: Context) -> Outcome:
        """Run the implementation for ``ctx.system`` (or report its fixed not-applicable reason)."""
        if ctx.system in self.not_applicable:
            return Outcome.not_applicable(self.not_applicable[ctx.system])
        fn = self.impls.get(ctx.system)
        if fn is None:
            raise NotApplicable(f"{self.id} has no {ctx.system} implementation")
        return fn(ctx)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "family": self.family, "systems": list(self.systems),
                "severity": self.severity, "reference": self.reference, "needs": list(self.needs),
                "description": self.description, "not_applicable": dict(self.not_applicable)}


REGISTRY: dict[str, Check] = {}


def check(id: str, title: str, *, systems: tuple[str, ...], severity: str, reference: str,
          needs: tuple[str, ...] = (), not_applicable: dict[str, str] | None = None,
          description: str | None = None) -> Callable[[CheckFn], CheckFn]:
    """Register a check and the decorated function as its implementation for ``systems``.

    The docstring is the description unless ``description`` is given.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity}")

    def register(fn: CheckFn) -> CheckFn:
        if id in REGISTRY:
            raise ValueError(f"duplicate check id {id}")
        text = description if description is not None else " ".join((fn.__doc__ or "").split())
        REGISTRY[id] = Check(id, title, severity, reference, needs, text,
                             {s: fn for s in systems}, dict(not_applicable or {}))
        return fn

    return register


def implements(id: str, *systems: str) -> Callable[[CheckFn], CheckFn]:
    """Add the decorated function as the implementation of check ``id`` for ``systems``."""

    def register(fn: CheckFn) -> CheckFn:
        target = REGISTRY.get(id)
        if target is None:
            raise ValueError(f"{fn.__name__}: no check {id} registered yet (import order)")
        for system in systems:
            if system in target.impls:
                raise ValueError(f"{id} already has a {system} implementation")
            target.impls[system] = fn
        return fn

    return register


def load_all() -> dict[str, Check]:
    """Import every check module (registration happens on import)."""
    from conformance import (  # noqa: F401
        checks_attestation,
        checks_device,
        checks_dialects,
        checks_lifecycle,
        checks_rights,
        checks_robustness,
        checks_streams,
        checks_tokens,
        checks_widevine,
    )

    return dict(sorted(REGISTRY.items(), key=lambda item: _sort_key(item[0])))


_FAMILY_ORDER = tuple(FAMILIES)


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
