"""The server-side license lifecycle: one explicit transition table, pure.

::

    issued ──use──► in_use ──renew──► renewed ──renew──► renewed
      │               │                  │
      └──release──────┴──────release─────┴──► released  (release again: acknowledged, no change)
      └──expire───────┴──────expire──────┴──► expired   (terminal)

Expiry is computed from the stored policy and ``now``; a license past its
deadline (plus the renewal recovery window) moves to ``expired`` before any
other event is applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

from license_server.core.model import LicensePolicy
from license_server.errors import DrmError, ErrorCode


class State(str, Enum):
    ISSUED = "issued"
    IN_USE = "in_use"
    RENEWED = "renewed"
    RELEASED = "released"
    EXPIRED = "expired"


class Event(str, Enum):
    USE = "use"
    RENEW = "renew"
    RELEASE = "release"
    EXPIRE = "expire"


TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.ISSUED, Event.USE): State.IN_USE,
    (State.ISSUED, Event.RENEW): State.RENEWED,
    (State.ISSUED, Event.RELEASE): State.RELEASED,
    (State.ISSUED, Event.EXPIRE): State.EXPIRED,
    (State.IN_USE, Event.USE): State.IN_USE,
    (State.IN_USE, Event.RENEW): State.RENEWED,
    (State.IN_USE, Event.RELEASE): State.RELEASED,
    (State.IN_USE, Event.EXPIRE): State.EXPIRED,
    (State.RENEWED, Event.USE): State.RENEWED,
    (State.RENEWED, Event.RENEW): State.RENEWED,
    (State.RENEWED, Event.RELEASE): State.RELEASED,
    (State.RENEWED, Event.EXPIRE): State.EXPIRED,
    (State.RELEASED, Event.RELEASE): State.RELEASED,  # idempotent: acknowledged again
    (State.EXPIRED, Event.EXPIRE): State.EXPIRED,
    (State.EXPIRED, Event.RELEASE): State.RELEASED,  # a device may report destroying an expired license
}

_REFUSAL = {
    State.RELEASED: ErrorCode.LICENSE_RELEASED,
    State.EXPIRED: ErrorCode.LICENSE_EXPIRED,
}


def transition(state: State, event: Event) -> State:
    """The next state, or a DrmError naming why the event is illegal now."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        code = _REFUSAL.get(state, ErrorCode.UNSUPPORTED_REQUEST)
        raise DrmError(code, f"cannot {event.value} a license that is {state.value}") from None


PolicyLike = LicensePolicy | Mapping[str, object]


def typed(policy: PolicyLike) -> LicensePolicy:
    """The typed policy (a stored JSON mapping is read back into :class:`LicensePolicy`)."""
    return policy if isinstance(policy, LicensePolicy) else LicensePolicy.from_dict(policy)


def deadline(policy: PolicyLike, license_start: int) -> int | None:
    """When the license ends on the server's books (:meth:`LicensePolicy.deadline`)."""
    return typed(policy).deadline(license_start)


def is_expired(policy: PolicyLike, license_start: int, now: int) -> bool:
    """Past the deadline and past the renewal recovery window."""
    terms = typed(policy)
    end = terms.deadline(license_start)
    return end is not None and now >= end + terms.renewal_recovery_duration


def current_state(state: State, policy: PolicyLike, license_start: int, now: int) -> State:
    """Apply the time-driven ``expire`` event if it is due."""
    if state in (State.ISSUED, State.IN_USE, State.RENEWED) and is_expired(policy, license_start, now):
        return transition(state, Event.EXPIRE)
    return state
