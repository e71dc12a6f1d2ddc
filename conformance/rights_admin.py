"""Changing the target's content-owner rights for one check, and always putting them back.

The shipped caps (100 active downloads per device, 15 downloads a month on the
ads tier) are too large to exhaust in a quick check, and per-title rules apply
to titles the catalog ships without them. The rights checks therefore lower a
cap or add a title rule through the target's admin API::

    GET   /admin/rights                     the current rules (saved first)
    PUT   /admin/rights                     the changed rules
    PATCH /admin/rights/titles/{content_id} one title's rules
    PUT   /admin/rights                     the saved rules again, when the check ends

The saved rules are restored in a ``finally`` (a failed or crashed check
restores them too) and read back; a restore that does not read back equal
raises, so the runner records an error rather than a pass. The need is
``rights``: ``GET /admin/rights`` answers 200 with the admin token.
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from conformance.catalog import Context, NotApplicable

RIGHTS = "/admin/rights"


def admin_call(ctx: Context, method: str, path: str, doc: Any = None) -> tuple[int, Any, str | None]:
    """One admin API call with a JSON body; (status, parsed JSON or None, X-DRM-Error-Code)."""
    data = json.dumps(doc).encode() if doc is not None else None
    request = urllib.request.Request(ctx.url(path), data=data, method=method,
                                     headers={**ctx.admin_headers(), "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, code = response.status, response.read(), response.headers.get("X-DRM-Error-Code")
    except urllib.error.HTTPError as exc:
        status, raw, code = exc.code, exc.read(), exc.headers.get("X-DRM-Error-Code")
    try:
        return status, json.loads(raw) if raw else None, code
    except ValueError:
        return status, None, code


def current_rights(ctx: Context) -> dict[str, Any]:
    """The target's rights document (``GET /admin/rights``)."""
    status, doc, code = admin_call(ctx, "GET", RIGHTS)
    if status != 200 or not isinstance(doc, dict):
        raise NotApplicable(f"GET {RIGHTS} answered HTTP {status} {code or ''}".strip()
                            + ": the runner cannot change the target's rights")
    return doc


def _put(ctx: Context, doc: dict[str, Any], what: str) -> dict[str, Any]:
    status, answer, code = admin_call(ctx, "PUT", RIGHTS, doc)
    if status != 200 or not isinstance(answer, dict):
        raise RuntimeError(f"PUT {RIGHTS} ({what}) answered HTTP {status} {code or ''}".strip())
    return answer


@contextmanager
def rights_changed(ctx: Context, change: Callable[[dict[str, Any]], None], *,
                   title: str | None = None) -> Iterator[dict[str, Any]]:
    """Apply ``change`` (a function editing a copy of the rights document in place) for the block.

    With ``title``, only that title's entry is sent, with ``PATCH /admin/rights/titles/{title}``;
    otherwise the whole document with ``PUT``. Yields evidence of what was changed and how;
    on exit it records how the previous rights were restored (``restored``).
    """
    before = current_rights(ctx)
    wanted = copy.deepcopy(before)
    change(wanted)
    how: dict[str, Any] = {"saved": f"GET {RIGHTS}"}
    try:
        if title is not None:
            entry = wanted.get("titles", {}).get(title, {})
            status, answer, code = admin_call(ctx, "PATCH", f"{RIGHTS}/titles/{title}", entry)
            if status != 200:
                raise RuntimeError(f"PATCH {RIGHTS}/titles/{title} answered HTTP {status} {code or ''}".strip())
            how.update(changed=f"PATCH {RIGHTS}/titles/{title}", sent=entry)
        else:
            answer = _put(ctx, wanted, "the check's change")
            how.update(changed=f"PUT {RIGHTS}", sent=_difference(before, wanted))
        how["now_in_force"] = _difference(before, answer)
        yield how
    finally:
        restored = _put(ctx, before, "restoring the previous rights")
        again = current_rights(ctx)
        how["restored"] = {"via": f"PUT {RIGHTS} with the saved document", "equal_to_saved": again == before}
        if again != before or restored != before:
            raise RuntimeError(f"the target's rights were not restored: {_difference(before, again)}")


def _difference(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The members (one level into tiers and titles) whose value differs, as ``{path: [before, after]}``."""
    changed: dict[str, Any] = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict) and key in ("tiers", "titles"):
            for name in sorted(set(old) | set(new)):
                if old.get(name) != new.get(name):
                    changed[f"{key}.{name}"] = [old.get(name), new.get(name)]
        elif old != new:
            changed[key] = [old, new]
    return changed


def title_entry(doc: dict[str, Any], content_id: str) -> dict[str, Any]:
    """The title's entry of a rights document, created (empty: the defaults) if absent."""
    return doc.setdefault("titles", {}).setdefault(content_id, {})
