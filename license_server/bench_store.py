"""Store-size benchmark: does a request cost the same on a full store as on an empty one?

``python -m license_server.bench_store --store-size N`` (also reached as
``license-server bench --store-size N``) opens two on-disk stores side by side,
fills one with ``N`` licenses spread over 10,000 devices and accounts (bulk
rows written straight into SQLite in one transaction: this measures the
queries, not the fill), then times the per-request store operations on both,
alternating rounds so that load from other processes hits both equally:

* ``grant``: :meth:`Store.record_grant` of a persistent license with caps
  (replay key, cap snapshot, device upsert, license, key ids, audit), to a device and
  account that already hold licenses (100 each on the filled store, 10 on the empty one),
  with a license id made as the server makes them and its title's key id (the fill gives
  every title one key id, as a catalog does, and lays its ids out like the server's);
* ``grant_temporary``: the same for a temporary license (a streaming grant: no caps, so
  none of the persistent licenses' slot and monthly indexes is written);
* ``renewal``: the license lookup plus :meth:`Store.record_lifecycle`;
* ``cap_check``: the usage snapshot a capped grant reads, for such a holder;
* ``admin_page``: ``GET /admin/licenses`` pages (unfiltered and by account).

The "empty" store holds 100 licenses over 10 holders, so that an admin page
returns as many rows on both stores (its cost is per row returned).

Both stores are opened as ``serve`` opens them, prewarmed (:meth:`Store.prewarm`). Then
``grant_cold`` and ``grant_temporary_cold`` time the first grant to a holder since the server
started; the rest are measured as on a server that has been running, after every holder's
entries in the four indexes keyed by device or account have been read once (:func:`warm`).

It prints each operation's median on both stores and their ratio (filled/empty;
1.0 is flat). Ratios, not absolute figures: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from license_server.core.entitlements import slot_end
from license_server.core.license_ids import RANDOM_BYTES, TIME_BYTES, new_license_id
from license_server.core.model import (
    Grant,
    Hdcp,
    LicenseKind,
    LicensePolicy,
    PlatformVerification,
    Robustness,
    SecurityLevel,
    Track,
    TrackKey,
    VerifiedDevice,
)
from license_server.core.ports import Holder, UsageRules
from license_server.store import PREWARM_READS, PREWARM_SECONDS, Store
from license_server.store_schema import MONTHLY_GRANTS_FROM_LICENSES
from license_server.store_sql import SLOT_HOLDING

HOLDERS = 10_000
REPEAT = 25  # timed operations of a kind per store and round
HOLDER_STRIDE = 7_919  # a prime: coprime with HOLDERS and BASELINE_HOLDERS
TITLES = 500
BASELINE, BASELINE_HOLDERS = 100, 10  # the "empty" store holds a few licenses, so admin pages are full on both
NOW = 1_780_000_000
POLICY = json.dumps(LicensePolicy(can_persist=True, license_duration=30 * 86400).as_dict())
SLOT = slot_end(json.loads(POLICY), 0)  # a license's slot end is its start plus this


def fill_issued_at(i: int, count: int, now: int = NOW) -> int:
    """When the fill's ``i``-th of ``count`` licenses was issued: spread over the 40 days before ``now``."""
    return now - 40 * 86400 + (i * 40 * 86400) // max(count, 1)


def fill_license_id(i: int, count: int, now: int = NOW) -> str:
    """The fill's ``i``-th license id, laid out as the server makes them (its issue time first)."""
    return f"{fill_issued_at(i, count, now):0{2 * TIME_BYTES}x}{i:0{2 * RANDOM_BYTES}x}"


def fill_layout(i: int, holders: int) -> tuple[int, str, str, int]:
    """The fill's ``i``-th license: its holder, kind, state and title. Each holder's licenses (its
    ``k``-th is the fill's ``holder + k * holders``-th) are half persistent, a quarter in each state,
    over many titles; a title has one key id, as in a real catalog."""
    holder, k = i % holders, i // holders
    return (holder, "persistent" if k % 2 else "temporary", ("issued", "released", "expired", "renewed")[k % 4],
            (holder + k) % TITLES)


def holder_device(holder: int, named: Sequence[str] = ()) -> str:
    """The fill's device id of ``holder``: the ``named`` ids first (real devices'), then made-up ones."""
    return named[holder] if holder < len(named) else f"{holder:032x}"


def fill(store: Store, count: int, *, holders: int = HOLDERS, now: int = NOW, named: Sequence[str] = ()) -> None:
    """Bulk-insert ``count`` licenses over ``holders`` devices/accounts (with devices, key ids, audit rows);
    the first holders are the devices ``named`` (a benchmark's own devices), the account of holder ``h``
    is ``acct-h``."""
    conn = store.db.conn
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO devices VALUES (?, 'widevine', 4660, 'bench-l1', 'L1', 'HARDWARE_VERIFIED', ?, ?)",
        ((holder_device(h, named), now - 86400, now - 60) for h in range(holders)))

    def rows() -> object:
        for i in range(count):
            holder, kind, state, title = fill_layout(i, holders)
            issued = fill_issued_at(i, count, now)
            yield (fill_license_id(i, count, now), "widevine", holder_device(holder, named), f"title-{title}",
                   kind, state, 1,
                   f'["{title:032x}"]', '["HD"]', POLICY, issued, issued, "{}", issued, f"acct-{holder}", "premium",
                   issued + SLOT if kind == "persistent" else None)

    conn.executemany(
        "INSERT INTO licenses (license_id, system, device_id, content_id, kind, state, version, kids, tracks, "
        "policy, issued_at, updated_at, secrets, license_start, account, tier, slot_end) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())  # type: ignore[arg-type]
    conn.execute("INSERT INTO license_kids SELECT substr(kids, 3, 32), license_id FROM licenses")
    conn.execute(MONTHLY_GRANTS_FROM_LICENSES)  # what the grant path counts as it goes
    conn.execute("INSERT INTO audit (at, system, event, device_id, content_id, license_id, code, message) "
                 "SELECT issued_at, system, 'grant', device_id, content_id, license_id, NULL, kind FROM licenses")
    conn.execute("COMMIT")


def settle(*stores: Store) -> None:
    """Checkpoint the fills into their database files and flush them to disk, so that the kernel's
    writeback of a gigabyte of fill does not land inside the measured operations."""
    for store in stores:
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.sync()


class Probe:
    """The per-request operations, against one store, with fresh ids every call."""

    def __init__(self, store: Store, tag: str, holders: int | None = None) -> None:
        self.store, self.tag, self.n, self.holders = store, tag, 0, holders
        self.last_license = ""

    def _holder(self) -> tuple[str, str]:
        """A device and account: a new one, or (``holders``) one of the holders the fill gave licenses."""
        if self.holders is None:
            return f"{self.tag}{self.n:030x}", f"new-{self.tag}-{self.n}"
        # a stride coprime with the holder count: every holder once per cycle, in no index's key order
        # (walking holders in order, each grant would land next to the previous one in the device indexes)
        holder = self.n * HOLDER_STRIDE % self.holders
        return f"{holder:032x}", f"acct-{holder}"

    def _device(self) -> VerifiedDevice:
        return VerifiedDevice(self._holder()[0], 4660, "bench-l1", SecurityLevel.L1,
                              PlatformVerification.HARDWARE_VERIFIED, Hdcp.V2_2, b"")

    def grant(self, kind: LicenseKind = LicenseKind.PERSISTENT) -> None:
        self.n += 1
        device, account = self._device(), self._holder()[1]
        key = TrackKey((1).to_bytes(16, "big"), os.urandom(16), Track.HD, Robustness.of_level(SecurityLevel.L1),
                       Hdcp.NONE)  # title-1's key id, which the fill gave to every license of title-1
        self.last_license = new_license_id(NOW)  # as the server makes them
        persistent = kind is LicenseKind.PERSISTENT
        grant = Grant(self.last_license, "title-1", kind, (key,),
                      LicensePolicy(can_persist=persistent, license_duration=86400), NOW, device)
        # caps that count but never refuse: the holder's licenses are counted on every persistent grant
        self.store.record_grant(grant, system="widevine", request_key=f"{self.tag}-rq-{self.n}", secrets={},
                                now=NOW, holder=Holder(account, "premium"),
                                caps=UsageRules(account, device.device_id, 1_000, 1_000_000, 1_000_000)
                                if persistent else None)

    def grant_temporary(self) -> None:
        self.grant(LicenseKind.TEMPORARY)

    def renewal(self) -> None:
        record = self.store.license(self.last_license)
        assert record is not None
        self.store.record_lifecycle(record.license_id, event="renew", state="renewed", now=NOW, system="widevine",
                                    version=record.version + 1, license_start=NOW)

    def cap_check(self) -> None:
        device, account = self._holder()
        self.store._usage_snapshot(account, device, NOW)

    def admin_page(self) -> None:
        self.store.licenses(limit=50)
        self.store.licenses(limit=5, account=f"acct-{self.n % BASELINE_HOLDERS}")


def _time(op: Callable[[], None], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        op()
        samples.append(time.perf_counter() - start)
    return samples


def prepare(directory: Path, store_size: int, *, echo: Callable[[str], None] = print) -> tuple[Store, Store]:
    """The "empty" and the filled store, both filled and settled: what is measured is the queries."""
    empty, filled = Store.open(directory / "empty.db"), Store.open(directory / "filled.db")
    fill(empty, BASELINE, holders=BASELINE_HOLDERS)
    start = time.perf_counter()
    fill(filled, store_size)
    settle(empty, filled)
    echo(f"filled a store with {store_size} licenses over {HOLDERS} devices/accounts "
         f"and settled it in {time.perf_counter() - start:.1f} s")
    for name, store in (("empty", empty), ("filled", filled)):  # as `serve` does when it starts
        start = time.perf_counter()
        done = store.prewarm(PREWARM_SECONDS)
        echo(f"prewarmed the {name} store ({done} of {len(PREWARM_READS)} reads) in "
             f"{time.perf_counter() - start:.2f} s")
    return empty, filled


def fill_file(path: Path, count: int, *, holders: int, named: Sequence[str], now: int) -> int:
    """``--fill``: a store file with ``count`` licenses over ``holders`` (for a server to open), settled."""
    if holders < 1 or len(named) > holders:
        print(f"bench-store: --holders must be at least 1 and the number of --device ids ({len(named)})",
              file=sys.stderr)
        return 2
    store = Store.open(path)
    try:
        fill(store, count, holders=holders, now=now, named=named)
        settle(store)
    finally:
        store.close()
    print(json.dumps({"filled": str(path), "licenses": count, "holders": holders, "now": now}))
    return 0


def warm(store: Store, holders: int) -> None:
    """Read every holder's entries in the four indexes keyed by device or account: the page cache of a
    server that has served each holder since it opened the store (reads only: the store is not changed)."""
    queries = ("SELECT COUNT(*) FROM licenses INDEXED BY licenses_device WHERE device_id = ?",
               "SELECT COUNT(*) FROM licenses INDEXED BY licenses_account WHERE account = ?",
               f"SELECT COUNT(*) FROM licenses INDEXED BY licenses_slots_device WHERE device_id = ? AND {SLOT_HOLDING}",
               f"SELECT COUNT(*) FROM licenses INDEXED BY licenses_slots_account WHERE account = ? AND {SLOT_HOLDING}")
    for holder in range(holders):
        for query, key in zip(queries, (f"{holder:032x}", f"acct-{holder}") * 2, strict=True):
            store.db.execute(query, (key,)).fetchone()


WARM_OPS = ("grant", "grant_temporary", "renewal", "cap_check", "admin_page")  # renewal: of the last grant
COLD_OPS = {"grant_cold": "grant", "grant_temporary_cold": "grant_temporary"}  # name: the Probe method


def run(store_size: int, *, rounds: int = 20, repeat: int = REPEAT,
        echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Fill a store with ``store_size`` licenses and compare per-operation medians against an empty one.

    First the first grant to each of many holders since the (prewarmed) store was opened (``*_cold``),
    then, after :func:`warm`, every operation as a server that has been running serves it.
    """
    with tempfile.TemporaryDirectory(prefix="drm-store-bench-") as tmp:
        empty, filled = prepare(Path(tmp), store_size, echo=echo)
        # Grants and cap checks go to holders that already hold licenses: 10 each on the "empty" store,
        # 100 each on the filled one (a fresh holder would not see what the caps read per holding).
        # Each grant goes to another holder: on the filled store, the cold ones reach 2 * rounds * repeat
        # of the 10,000 holders, none of them twice.
        cold = _measure({"empty": Probe(empty, "e", BASELINE_HOLDERS), "filled": Probe(filled, "f", HOLDERS)},
                        COLD_OPS, rounds, repeat)
        warm(empty, BASELINE_HOLDERS)
        warm(filled, HOLDERS)
        steady = _measure({"empty": Probe(empty, "we", BASELINE_HOLDERS), "filled": Probe(filled, "wf", HOLDERS)},
                          {op: op for op in WARM_OPS}, rounds, repeat)
        empty.close()
        filled.close()
    result: dict[str, Any] = {"store_size": store_size, "holders": HOLDERS, "operations": {}}
    for op, (e, f) in {**steady, **cold}.items():
        result["operations"][op] = {"empty_us": round(e * 1e6, 1), "filled_us": round(f * 1e6, 1),
                                    "ratio": round(f / e, 3)}
    return result


def _measure(probes: dict[str, Probe], ops: dict[str, str], rounds: int,
             repeat: int) -> dict[str, tuple[float, float]]:
    """Each operation's median on the empty and the filled store: {name: (empty, filled)}, ``ops`` naming
    the :class:`Probe` method behind each name; stores alternate every round, so shared-CPU noise hits both."""
    samples: dict[str, dict[str, list[float]]] = {name: {op: [] for op in ops} for name in probes}
    for _ in range(rounds):
        for name, probe in probes.items():
            for op, method in ops.items():
                samples[name][op].extend(_time(getattr(probe, method), repeat))
    return {op: (statistics.median(samples["empty"][op]), statistics.median(samples["filled"][op])) for op in ops}


def report(result: dict[str, Any]) -> str:
    lines = [f"store size {result['store_size']}: median cost, filled vs empty store (ratio 1.0 = flat)"]
    for op, row in result["operations"].items():
        lines.append(f"  {op:<20} empty {row['empty_us']:>8.1f} us   filled {row['filled_us']:>8.1f} us   "
                     f"ratio {row['ratio']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-store", description=__doc__.split("\n")[0])
    parser.add_argument("--store-size", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20,
                        help=f"rounds of {REPEAT} operations each (at most {HOLDERS // (2 * REPEAT)}: the cold "
                             "grants go to holders the process has not seen)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--fill", type=Path, default=None, metavar="DB",
                        help="Instead: fill the store file DB (a server's DATA_DIR/license-server.db) and exit")
    parser.add_argument("--holders", type=int, default=HOLDERS, help="with --fill: devices/accounts to spread over")
    parser.add_argument("--device", action="append", default=[], metavar="DEVICE_ID",
                        help="with --fill: the first holders' device ids (repeat; a benchmark's own devices)")
    parser.add_argument("--now", type=int, default=None, help="with --fill: the fill's time [default: now]")
    args = parser.parse_args(argv)
    if args.fill is not None:
        return fill_file(args.fill, args.store_size, holders=args.holders, named=args.device,
                         now=int(time.time()) if args.now is None else args.now)
    if not 1 <= args.rounds <= HOLDERS // (2 * REPEAT):
        parser.error(f"--rounds must be between 1 and {HOLDERS // (2 * REPEAT)}")
    result = run(args.store_size, rounds=args.rounds, echo=lambda m: print(m, file=sys.stderr))
    print(json.dumps(result) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
