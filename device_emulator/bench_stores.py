"""``license-server bench --compare-stores URL``: one run, three deployments, the same load.

SQLite on one host, PostgreSQL behind one replica, PostgreSQL behind two replicas (each
replica gets half the connections; their licenses/s add up). Every configuration gets its
own freshly spawned servers and its own distinct challenges (a replayed challenge would be
refused on the shared database). The PostgreSQL figures are also given as a share of SQLite's.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from license_server import dialects
from license_server.bench import BenchResult, fire, spawn_server

CONFIGURATIONS = (("sqlite, 1 host", None, 1), ("postgresql, 1 replica", "pg", 1), ("postgresql, 2 replicas", "pg", 2))


def merged(results: list[BenchResult]) -> BenchResult:
    """Replicas measured side by side, as one result (their wall times overlap: the longest counts)."""
    return BenchResult(sent=sum(r.sent for r in results), granted=sum(r.granted for r in results),
                       errors=sum((r.errors for r in results), Counter()),
                       elapsed=max(r.elapsed for r in results),
                       latencies_ms=[ms for r in results for ms in r.latencies_ms])


async def side_by_side(urls: list[str], challenges: list[bytes], *, concurrency: int, duration: float,
                       content_type: str, headers: dict[str, str]) -> list[BenchResult]:
    """Fire at every URL at once, each with ``concurrency`` connections and its share of the challenges."""
    return list(await asyncio.gather(*(
        fire(url, challenges[n::len(urls)], concurrency=concurrency, duration=duration, content_type=content_type,
             headers=headers) for n, url in enumerate(urls))))


def compare(work: Path, store_url: str, *, prepare: Callable[..., tuple[list[bytes], str, dict[str, str]]],
            concurrency: int, duration: float, requests: int, devices: int, keys_dir: Path | None,
            privacy: bool, system: str, echo: Callable[[str], None]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for number, (label, backend, replicas) in enumerate(CONFIGURATIONS):
        store = store_url if backend else None
        spawned = [spawn_server(work / f"c{number}-r{n}", keys_dir, store=store) for n in range(replicas)]
        try:
            urls = [url for _, url in spawned]
            echo(f"{label}: building {requests} challenges ...")
            challenges, content_type, headers = prepare(work / f"c{number}-devices", count=requests,
                                                        devices=devices, keys_dir=keys_dir, server=urls[0],
                                                        privacy=privacy, system=system)
            path = dialects.dialect(system).license_path
            result = merged(asyncio.run(side_by_side([url + path for url in urls], challenges,
                                                     concurrency=max(1, concurrency // replicas), duration=duration,
                                                     content_type=content_type, headers=headers)))
        finally:
            for proc, _ in spawned:
                proc.terminate()
                proc.wait(10)
        row = {"configuration": label, **result.as_dict(concurrency)}
        rows.append(row)
        echo(f"{label}: {row['licenses_per_s']} licenses/s, p95 {row['p95_ms']} ms")
    base = float(rows[0]["licenses_per_s"]) or 1.0  # type: ignore[arg-type]
    for row in rows:
        row["vs_sqlite"] = round(float(row["licenses_per_s"]) / base, 3)  # type: ignore[arg-type]
    return rows


def table(rows: list[dict[str, object]]) -> str:
    lines = [f"{'configuration':<24}{'licenses/s':>12}{'p50 ms':>9}{'p95 ms':>9}{'errors':>8}{'vs sqlite':>11}"]
    for row in rows:
        errors = int(row["sent"]) - int(row["granted"])  # type: ignore[call-overload]
        lines.append(f"{row['configuration']!s:<24}{row['licenses_per_s']!s:>12}{row['p50_ms']!s:>9}"
                     f"{row['p95_ms']!s:>9}{errors:>8}{float(row['vs_sqlite']):>10.0%} ")  # type: ignore[arg-type]
    return "\n".join(lines)
