"""Content-owner rights and business rules beyond the device cap: download cap, monthly allowance,
regions and per-title rules (``TOK-005`` .. ``TOK-010``).

Every check uses a fresh account (a token minted like :mod:`conformance.entitlement`
does). Rules the shipped ``rights.json`` does not set up in a checkable way (caps of
100 downloads per device and 15 a month, titles without region or track rules) are
set for the check through the admin API and the previous rights are restored
afterwards, even when the check fails (:mod:`conformance.rights_admin`); without
that access those checks are not applicable, with the reason. Rules a token claim
can carry (``regions``, ``region``) need no admin access.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from conformance import references as ref
from conformance.catalog import DEVICE_SYSTEMS, SYSTEMS, Context, NotApplicable, Outcome, check
from conformance.dialects import PERSISTENT, TEMPORARY, dialect, make_device
from conformance.entitlement import TOKEN_HEADER, claims, mint
from conformance.rights_admin import admin_call, rights_changed, title_entry
from conformance.target import server_clock, server_time

ALL = SYSTEMS
REGION_HEADER = "X-DRM-Region"
TITLE = "demo-episode"  # the title whose rules the per-title checks change (restored afterwards)
OTHER = "demo-movie"
REF = ref.RIGHTS + " (content-owner rights and business rules, caps)"
CLEARKEY = "W3C Clear Key has no device identity (EME 'org.w3.clearkey')"
NO_DEVICE_CAPS = (f"{CLEARKEY}: a Clear Key persistent license counts against no device (docs/entitlements.md), "
                  "so per-device caps cannot apply")
NO_ROBUSTNESS = (f"{CLEARKEY} and no security level: every requested key goes to every client, so a per-track "
                 "requirement has nothing to select on")


class Steps:
    """The requests of one check, each with what was expected and what was observed."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.rows: list[dict[str, Any]] = []

    def attempt(self, label: str, attempt, expected: str | None, **extra: Any) -> bool:
        """A dialect-client :class:`~conformance.dialects.Attempt`; ``expected`` None means granted."""
        client = dialect(self.ctx)
        observed = "granted" if attempt.granted else f"{attempt.reply.status} {attempt.code}"
        wanted = "granted" if expected is None else f"{client.refusal_status(expected)} {expected}"
        ok = attempt.granted if expected is None else (
            not attempt.granted and (attempt.reply.status, attempt.reply.error_code)
            == (client.refusal_status(expected), expected))
        self.rows.append({"step": label, **extra, **attempt.evidence(), "tracks": attempt.tracks,
                          "expected": wanted, "observed": observed, "ok": ok})
        return ok

    def acquired(self, label: str, acquired, expected: str | None) -> bool:
        """A device-adapter :class:`~conformance.device_adapter.Acquired`."""
        observed = "granted" if acquired.status == "granted" else f"refused {acquired.error_code}"
        wanted = "granted" if expected is None else f"refused {expected}"
        self.rows.append({"step": label, "acquire": acquired.as_dict(), "expected": wanted, "observed": observed,
                          "ok": observed == wanted})
        return observed == wanted

    def note(self, label: str, ok: bool, **details: Any) -> bool:
        self.rows.append({"step": label, **details, "ok": ok})
        return ok

    def outcome(self, passed: str, **evidence: Any) -> Outcome:
        """Failed at the first step that went wrong, with every step as evidence; else passed."""
        evidence = {**evidence, "steps": self.rows,
                    "expected": [r.get("expected") for r in self.rows if "expected" in r],
                    "observed": [r.get("observed") for r in self.rows if "observed" in r]}
        wrong = next((r for r in self.rows if not r["ok"]), None)
        if wrong is not None:
            return Outcome.failed(f"{wrong['step']}: expected {wrong.get('expected', 'success')}, "
                                  f"observed {wrong.get('observed', 'otherwise')}", **evidence)
        return Outcome.passed(passed, **evidence)


def _title(ctx: Context, content_id: str = TITLE) -> str:
    if ctx.keyring.catalog.title(content_id) is None:
        raise NotApplicable(f"{content_id} is not in the catalog of the keys directory")
    return content_id


def _device(ctx: Context, level: str = "L1"):
    return None if ctx.system == "clearkey" else make_device(ctx, level)


def _headers(token: str, region: str | None = None) -> dict[str, str]:
    return {TOKEN_HEADER: token, **({REGION_HEADER: region} if region else {})}


# ------------------------------------------------------------------ caps


@check("TOK-005", "The per-device active-download cap is enforced; a release or an expiry frees a slot",
       systems=DEVICE_SYSTEMS, severity="high", reference=REF, needs=("tokens", "rights"),
       not_applicable={"clearkey": NO_DEVICE_CAPS})
def download_cap(ctx: Context) -> Outcome:
    """With max_active_downloads_per_device lowered to 1 for the check: a device downloads one title; a second
    download is refused DOWNLOAD_LIMIT_REACHED; after the first is removed (release acknowledged) the second is
    granted; a third is refused again until the second expires (its 10-minute storage window passes on the server
    clock, or, without time control, it is force-expired through the admin API); then it is granted."""
    from conformance.checks_device import lifecycle

    adapter = lifecycle(ctx)
    first, second = OTHER, _title(ctx)
    body = claims(ctx, content=[first, second], tier="premium", policy={"persistent": True, "rental": 600})
    body["exp"] = body["iat"] + 86400  # outlives the storage window the check lets pass
    token = mint(ctx, body)
    steps = Steps(ctx)

    def get(content_id: str):
        return adapter.acquire(device, system=ctx.system, content_id=content_id, persistent=True, token=token)

    def cap(doc: dict[str, Any]) -> None:
        doc["max_active_downloads_per_device"] = 1

    def going() -> bool:
        return all(r["ok"] for r in steps.rows)

    with rights_changed(ctx, cap) as change:
        device = adapter.provision()
        steps.acquired(f"download {first}", get(first), None) \
            and steps.acquired(f"download {second} (a second active download)", get(second), "DOWNLOAD_LIMIT_REACHED")
        if going():
            removal = adapter.remove(device, first, online=True)
            released = bool(removal.get("released"))
            steps.note(f"remove {first} online", released, release=removal, expected="release acknowledged",
                       observed="release acknowledged" if released else "not acknowledged")
        if going():
            held = get(second)
            steps.acquired(f"download {second} after the release", held, None) \
                and steps.acquired(f"download {first} (again a second active download)", get(first),
                                   "DOWNLOAD_LIMIT_REACHED")
        if going():
            with _expired(ctx, adapter, device, held) as expiry:
                if steps.note(f"{second} expires", expiry.pop("ok"), **expiry):
                    steps.acquired(f"download {first} after the expiry", get(first), None)
    return steps.outcome("the cap of 1 refused a second download; a release and an expiry each freed the slot",
                         rights_change=change, account=body["sub"], token_policy=body["policy"])


@contextmanager
def _expired(ctx: Context, adapter, device, held) -> Iterator[dict[str, Any]]:
    """The held download expired for the block: its 600 s storage window passes on the server clock (moved
    back afterwards), or, without time control, the admin API force-expires it."""
    if ctx.capabilities.get("test-clock"):
        with server_clock(ctx) as clock:
            clock.advance(660)
            adapter.advance_clock(device, 660)
            yield {"ok": True, "via": "server clock advanced 660 s past the 600 s storage window (POST /admin/clock)",
                   "expected": "expired", "observed": "storage window passed"}
        return
    status, doc, code = admin_call(ctx, "POST", f"/admin/licenses/{held.license_id}/expire",
                                   {"reason": "drm-conformance"})
    state = doc.get("state") if isinstance(doc, dict) else None
    yield {"ok": status == 200 and state == "expired", "expected": "expired",
           "via": f"POST /admin/licenses/{held.license_id}/expire (no time control)",
           "observed": f"HTTP {status} {code or ''} state {state}".strip()}


def next_month(now: int) -> int:
    """The first second of the calendar month (UTC) after the one containing ``now``."""
    day = datetime.fromtimestamp(now, tz=UTC)
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


@check("TOK-006", "The ads tier's monthly download allowance is enforced and resets the next calendar month",
       systems=DEVICE_SYSTEMS, severity="medium", reference=REF, needs=("tokens", "rights", "test-clock"),
       not_applicable={"clearkey": NO_DEVICE_CAPS})
def monthly_allowance(ctx: Context) -> Outcome:
    """With the ads tier's monthly_allowance lowered to 2 for the check: an ads-tier account downloads twice on
    one device; the third download that month is refused MONTHLY_ALLOWANCE_EXHAUSTED; once the server clock
    reaches the 1st of the next month (UTC) a download is granted again. The server clock is moved back after."""
    client = dialect(ctx)
    steps = Steps(ctx)
    account = claims(ctx)["sub"]

    def allowance(doc: dict[str, Any]) -> None:
        tiers = doc.setdefault("tiers", {})
        tiers["ads"] = {**tiers.get("ads", {}), "downloads": True, "monthly_allowance": 2}

    def token(now: int) -> str:
        return mint(ctx, claims(ctx, sub=account, tier="ads", content=[OTHER], policy={"persistent": True},
                                iat=now, exp=now + 600))

    months: dict[str, str] = {}
    with rights_changed(ctx, allowance) as change, server_clock(ctx) as clock:
        device = make_device(ctx, "L1")
        now = server_time(ctx)
        if next_month(now) - now < 3600:  # too close to the month's end: start in the next month
            now = clock.advance(next_month(now) - now + 3600, device)
        months["downloads"] = _month(now)
        headers = _headers(token(now))
        for n in (1, 2):
            steps.attempt(f"download {n} of the month", client.acquire(ctx, device, OTHER, PERSISTENT,
                                                                       headers=headers), None)
        steps.attempt("download 3 of the month", client.acquire(ctx, device, OTHER, PERSISTENT, headers=headers),
                      "MONTHLY_ALLOWANCE_EXHAUSTED")
        now = clock.advance(next_month(now) - now + 3600, device)
        months["after"] = _month(now)
        steps.attempt(f"download in the next month ({months['after']})",
                      client.acquire(ctx, device, OTHER, PERSISTENT, headers=_headers(token(now))), None,
                      server_time=now)
    return steps.outcome("2 downloads, the 3rd refused MONTHLY_ALLOWANCE_EXHAUSTED, granted again the next month",
                         rights_change=change, account=account, tier="ads", months=months,
                         server_clock={"moved_by": clock.total, "moved_back": True})


def _month(now: int) -> str:
    return datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m")


# ------------------------------------------------------------------ regions


@check("TOK-007", "A token restricted to regions refuses other and unknown regions (REGION_NOT_ALLOWED)",
       systems=ALL, severity="high", reference=REF, needs=("tokens",))
def token_regions(ctx: Context) -> Outcome:
    """A token valid in DE and AT: a request from FR (X-DRM-Region) and one without any region are refused
    REGION_NOT_ALLOWED, one from DE is granted; the token's own region claim wins over the header (claim FR with
    header DE refused, claim AT with header FR granted)."""
    client, steps = dialect(ctx), Steps(ctx)
    body = claims(ctx, regions=["DE", "AT"])
    token = mint(ctx, body)
    for label, headers, expected in (
            ("header FR", _headers(token, "FR"), "REGION_NOT_ALLOWED"),
            ("no region at all", _headers(token), "REGION_NOT_ALLOWED"),
            ("header DE", _headers(token, "DE"), None),
            ("region claim FR, header DE", _headers(mint(ctx, {**body, "region": "FR"}), "DE"), "REGION_NOT_ALLOWED"),
            ("region claim AT, header FR", _headers(mint(ctx, {**body, "region": "AT"}), "FR"), None)):
        steps.attempt(label, client.acquire(ctx, _device(ctx), headers=headers), expected,
                      region_header=headers.get(REGION_HEADER))
    return steps.outcome("other and unknown regions refused, allowed ones granted, the claim wins over the header",
                         token_regions=body["regions"])


@check("TOK-008", "A title restricted to regions refuses other and unknown regions (REGION_NOT_ALLOWED)",
       systems=ALL, severity="high", reference=REF, needs=("tokens", "rights"))
def title_regions(ctx: Context) -> Outcome:
    """Control: a request from FR is granted. With the title's rights restricted to DE and AT for the check
    (PATCH /admin/rights/titles/{id}): a request from FR and one without a region are refused
    REGION_NOT_ALLOWED, one from DE is granted, and a token's region claim DE is honoured without the header."""
    client, steps, title = dialect(ctx), Steps(ctx), _title(ctx)
    body = claims(ctx, content=[title])
    token = mint(ctx, body)

    def acquire(headers: dict[str, str]):
        return client.acquire(ctx, _device(ctx), title, headers=headers)

    steps.attempt("before the change: header FR", acquire(_headers(token, "FR")), None)

    def restrict(doc: dict[str, Any]) -> None:
        title_entry(doc, title)["regions"] = ["DE", "AT"]

    with rights_changed(ctx, restrict, title=title) as change:
        for label, headers, expected in (
                ("header FR", _headers(token, "FR"), "REGION_NOT_ALLOWED"),
                ("no region at all", _headers(token), "REGION_NOT_ALLOWED"),
                ("header DE", _headers(token, "DE"), None),
                ("region claim DE, no header", _headers(mint(ctx, {**body, "region": "DE"})), None)):
            steps.attempt(label, acquire(headers), expected, region_header=headers.get(REGION_HEADER))
    return steps.outcome("the title's region rule refused FR and an unknown region and granted DE",
                         rights_change=change, title=title)


# ------------------------------------------------------------------ per-title rules


@check("TOK-009", "A title made non-downloadable refuses persistent licenses (OFFLINE_NOT_ALLOWED)",
       systems=ALL, severity="high", reference=REF, needs=("tokens", "rights"))
def title_not_downloadable(ctx: Context) -> Outcome:
    """Control: a token with offline rights gets a persistent license for the title. With the title set to
    "downloadable": false for the check, the same request is refused OFFLINE_NOT_ALLOWED, while a temporary
    (streaming) license for it is still granted."""
    client, steps, title = dialect(ctx), Steps(ctx), _title(ctx)
    token = mint(ctx, claims(ctx, content=[title], policy={"persistent": True}))
    steps.attempt("before the change: persistent license",
                  client.acquire(ctx, _device(ctx), title, PERSISTENT, headers=_headers(token)), None)

    def forbid(doc: dict[str, Any]) -> None:
        title_entry(doc, title)["downloadable"] = False

    with rights_changed(ctx, forbid, title=title) as change:
        steps.attempt("persistent license", client.acquire(ctx, _device(ctx), title, PERSISTENT,
                                                            headers=_headers(token)), "OFFLINE_NOT_ALLOWED")
        steps.attempt("temporary license", client.acquire(ctx, _device(ctx), title, TEMPORARY,
                                                           headers=_headers(token)), None)
    return steps.outcome("the title's downloadable:false refused the persistent license, streaming still allowed",
                         rights_change=change, title=title)


@check("TOK-010", "A per-title track rule changes which keys a device gets", systems=DEVICE_SYSTEMS,
       severity="high", reference=REF, needs=("tokens", "rights"), not_applicable={"clearkey": NO_ROBUSTNESS})
def title_track_rule(ctx: Context) -> Outcome:
    """Control: an L3 (software) device gets the title's SD key. With the title's rule "SD needs L1" for the
    check, an L3 device gets the title's other keys but no SD key, and an L1 device still gets the SD key."""
    client, steps, title = dialect(ctx), Steps(ctx), _title(ctx)
    token = mint(ctx, claims(ctx, content=[title]))
    before = client.acquire(ctx, make_device(ctx, "L3"), title, headers=_headers(token))
    steps.attempt("before the change: L3 device", before, None)
    steps.note("before the change: the L3 device has an SD key", "SD" in before.tracks,
               expected="SD among the tracks", observed=before.tracks)

    def rule(doc: dict[str, Any]) -> None:
        title_entry(doc, title).setdefault("tracks", {})["SD"] = {"min_level": "L1"}

    with rights_changed(ctx, rule, title=title) as change:
        low = client.acquire(ctx, make_device(ctx, "L3"), title, headers=_headers(token))
        high = client.acquire(ctx, make_device(ctx, "L1"), title, headers=_headers(token))
    if steps.attempt("with the rule: L3 device", low, None):
        wanted = sorted(set(before.tracks) - {"SD"})
        steps.note("with the rule: the L3 device has no SD key, its other keys unchanged", low.tracks == wanted,
                   expected=wanted, observed=low.tracks)
    if steps.attempt("with the rule: L1 device", high, None):
        steps.note("with the rule: the L1 device still has an SD key", "SD" in high.tracks,
                   expected="SD among the tracks", observed=high.tracks,
                   sd_key_marking=[k for k in high.keys if k["track"] == "SD"])
    return steps.outcome("the title's track rule withheld SD from the L3 device and not from the L1 device",
                         rights_change=change, title=title, rule={"SD": {"min_level": "L1"}})
