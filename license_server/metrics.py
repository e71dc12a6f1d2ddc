"""Prometheus metrics of one server (``GET /metrics``), built on prometheus-client.

Every application owns a :class:`Metrics` with its own registry, so test apps in
one process never share counters. Label values are drawn from small fixed sets:
a dialect or route family (the route name's prefix, never a raw path), a stable
error code, a license kind. Device ids, namespaces, content ids and paths never
become labels.

With ``--workers N`` every worker process counts on its own. :func:`enable_multiprocess`
(called by ``serve`` before any worker starts) switches prometheus-client to its
multiprocess mode: each process writes its values to memory-mapped files in one
temporary directory, and a scrape answered by any worker reads all of them, so
counters and histograms are the sum over the workers. ``process_*`` metrics then
describe the process that answered the scrape only.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from license_server import __version__

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
NO_ROUTE = "none"  # requests no route matched (404s, probes)
STORE_ERROR_MODULES = ("sqlite3", "psycopg", "psycopg_pool")


def multiprocess_dir() -> Path | None:
    """The shared directory of multiprocess mode, or ``None`` in single-process mode."""
    path = os.environ.get(MULTIPROC_ENV)
    return Path(path) if path else None


def enable_multiprocess() -> Path:
    """Switch this process (and the workers it forks later) to multiprocess metrics in a fresh temp dir.

    Must run before the first :class:`Metrics` is built; the caller removes the
    directory with :func:`disable_multiprocess` when the server stops.
    """
    path = Path(tempfile.mkdtemp(prefix="license-server-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    values.ValueClass = values.get_value_class()
    return path


def disable_multiprocess(path: Path) -> None:
    os.environ.pop(MULTIPROC_ENV, None)
    values.ValueClass = values.get_value_class()
    shutil.rmtree(path, ignore_errors=True)


def is_store_error(exc: BaseException) -> bool:
    """Does an unexpected exception come from the database driver (SQLite or PostgreSQL)?"""
    return isinstance(exc, sqlite3.Error) or type(exc).__module__.split(".")[0] in STORE_ERROR_MODULES


class Metrics:
    """The counters and histograms one application updates, and their exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.grants = Counter("drm_licenses_granted", "Licenses granted (new licenses, not renewals).",
                              ("dialect", "kind"), registry=reg)
        self.refusals = Counter("drm_refusals", "Requests answered with a stable error code.",
                                ("dialect", "code"), registry=reg)
        self.requests = Counter("drm_http_requests", "HTTP requests answered, by route family and status class.",
                                ("family", "status"), registry=reg)
        self.latency = Histogram("drm_http_request_duration_seconds", "Time from routing to the response, "
                                 "by route family.", ("family",), buckets=LATENCY_BUCKETS, registry=reg)
        self.store_errors = Counter("drm_store_errors", "Unexpected database errors while serving a request.",
                                    ("error",), registry=reg)
        info = Gauge("drm_server_info", "The server version (value 1).", ("version",), registry=reg,
                     multiprocess_mode="max")
        info.labels(__version__).set(1)
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._multiprocess = multiprocess_dir()
        if self._multiprocess is None:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)

    # The three calls below are on the request path: plain label lookups, nothing else.

    def granted(self, system: str, kind: str) -> None:
        self.grants.labels(system, kind).inc()

    def refused(self, dialect: str, code: str) -> None:
        self.refusals.labels(dialect, code).inc()

    def observe(self, family: str, status: int, seconds: float) -> None:
        key = (family, status // 100)
        children = self._children.get(key)
        if children is None:  # label resolution once per (family, status class), then plain attribute calls
            children = self._children[key] = (self.requests.labels(family, f"{key[1]}xx"), self.latency.labels(family))
        children[0].inc()
        children[1].observe(seconds)

    def store_error(self, exc: BaseException) -> None:
        self.store_errors.labels(type(exc).__name__[:40]).inc()

    def exposition(self) -> bytes:
        """The text format: this process's registry, or the sum over every worker's files."""
        if self._multiprocess is None:
            return generate_latest(self.registry)
        scrape = CollectorRegistry()
        MultiProcessCollector(scrape, path=str(self._multiprocess))
        ProcessCollector(registry=scrape)
        return generate_latest(scrape)
