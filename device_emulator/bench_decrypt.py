"""``device-emulator bench-decrypt``: software sample-decryption throughput, cenc and cbcs.

Builds video-like protected samples in memory (64 KiB each, a short clear
subsample for the NAL header then one protected range, as packagers write
them; ``cbcs`` with the 1:9 video pattern) and times
:func:`license_server.crypto.cenc.decrypt_sample` over them. The figure is
the best of several passes, in MB/s: 10^6 bytes of sample data per second
of CPU time used by this process (so that other load on a shared machine
does not count as slowness). A benchmark command, not a test: nothing asserts
on its numbers.
"""

from __future__ import annotations

import os
import time
from typing import Any

import click

from license_server.crypto.cenc import ProtectedSample, decrypt_sample

SAMPLE_BYTES = 64 * 1024
CLEAR_HEADER = 5  # bytes of NAL header left clear at the start of each sample
VIDEO_PATTERN = (1, 9)  # crypt:skip blocks of cbcs video


def video_samples(scheme: str, total_bytes: int) -> list[ProtectedSample]:
    """Protected samples of ``scheme`` adding up to about ``total_bytes`` (random data: speed does not depend on it)."""
    count = max(1, total_bytes // SAMPLE_BYTES)
    data = os.urandom(SAMPLE_BYTES)
    subsamples = ((CLEAR_HEADER, SAMPLE_BYTES - CLEAR_HEADER),)
    if scheme == "cenc":
        return [ProtectedSample("cenc", os.urandom(8), data, subsamples) for _ in range(count)]
    crypt, skip = VIDEO_PATTERN
    return [ProtectedSample("cbcs", os.urandom(16), data, subsamples, crypt, skip) for _ in range(count)]


def measure(scheme: str, *, total_bytes: int = 32 * 10**6, passes: int = 3) -> float:
    """Best-of-``passes`` decryption throughput of ``scheme`` in MB/s."""
    key = os.urandom(16)
    samples = video_samples(scheme, total_bytes)
    size = sum(len(s.data) for s in samples)
    best = float("inf")
    for _ in range(passes):
        started = time.process_time()
        for sample in samples:
            decrypt_sample(key, sample)
        best = min(best, time.process_time() - started)
    return size / max(best, 1e-6) / 1e6


def run(*, total_mb: int, passes: int) -> dict[str, Any]:
    return {f"{scheme}_mb_s": round(measure(scheme, total_bytes=total_mb * 10**6, passes=passes), 1)
            for scheme in ("cenc", "cbcs")}


@click.command("bench-decrypt")
@click.option("--size", "total_mb", type=click.IntRange(1, 4096), default=32, show_default=True,
              help="MB of sample data decrypted per pass and scheme.")
@click.option("--passes", type=click.IntRange(1, 100), default=3, show_default=True, help="Passes; the best counts.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def command(total_mb: int, passes: int, as_json: bool) -> None:
    """Measure software decryption speed (MB/s) of cenc and cbcs 1:9 video samples."""
    import json

    result = run(total_mb=total_mb, passes=passes)
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"cenc (AES-CTR):            {result['cenc_mb_s']:>9.1f} MB/s")
        click.echo(f"cbcs (AES-CBC, 1:9 video): {result['cbcs_mb_s']:>9.1f} MB/s")


def register(group: click.Group) -> None:
    """Add ``bench-decrypt`` to the ``device-emulator`` command group."""
    group.add_command(command)
