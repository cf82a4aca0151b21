"""Prometheus metrics at ``/metrics`` (DESIGN §8), summed over every gunicorn worker.

What an operator alerts on: request rates and latencies by operation (``user.patch``,
``group.members.add``, ...) and status, so 5xx, 429 and 503 (database down, deprovisioning held)
show up per operation; and the audit events that could not be recorded, which must stay at zero.
Labels never name an organisation, a connection or a user: the endpoint is unauthenticated, like
``/healthz``, and tells nothing about any tenant.

Under gunicorn (``deploy/gunicorn.conf.py``) each worker writes its counts to files in
``PROMETHEUS_MULTIPROC_DIR`` and a scrape adds them up, so a scrape that lands on any worker sees
the whole server. When a worker ends (recycled by ``max_requests``, or killed), the master adds
its counts into one archive file per kind and removes its own (:func:`archive_dead_worker`):
the folder holds two files per live worker plus two, not two more per recycle for ever (a
tmpfs that fills up kills every worker that writes to it, and each file slows every scrape).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

bp = Blueprint("metrics", __name__)

REQUESTS = Counter(
    "scim_http_requests",
    "HTTP requests answered, by operation and status.",
    ["operation", "status"],
)
DURATION = Histogram(
    "scim_http_request_duration_seconds",
    "Time from the request's arrival to its response, audit event included, by operation.",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
AUDIT_FAILURES = Counter(
    "scim_audit_record_failures",
    "Requests answered whose provisioning-log event could not be recorded (should stay 0).",
)


def operation_of(endpoint: str | None) -> str:
    """The label of a request: its provisioning-log operation, else its endpoint's name."""
    if endpoint is None:
        return "http.unknown_endpoint"
    operations: dict[str, str] = current_app.extensions["scim_operations"]
    return operations.get(endpoint, endpoint)


def register_metrics(app: Flask) -> None:
    """Register first, so the request's time includes every other hook (its audit event)."""

    @app.before_request
    def _start_clock() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.get("metrics_started")
        operation = operation_of(request.endpoint)
        REQUESTS.labels(operation, str(response.status_code)).inc()
        if started is not None:
            DURATION.labels(operation).observe(time.perf_counter() - started)
        return response

    app.register_blueprint(bp)


#: Scrapes taken again when a worker's file vanished under them, before giving up.
_SCRAPE_ATTEMPTS = 5


@bp.get("/metrics")
def metrics() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        body = _every_worker()
    else:
        body = generate_latest(REGISTRY)
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def _every_worker() -> bytes:
    """The counts of every worker's files, read while workers come and go.

    A file can vanish between listing the folder and reading it: the master archived a
    recycled worker (:func:`archive_dead_worker`), whose counts are in the archive by then, so
    the scrape is taken again (skipping the file would lower a counter for one scrape, which
    Prometheus reads as a reset). A file a new worker has only just created is still empty,
    with no counts yet, and is left out (prometheus_client fails on it). Both answered 500
    before, seen under ``max_requests`` recycling.
    """
    registry = CollectorRegistry()
    registry.register(_WorkerFiles(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    for _ in range(_SCRAPE_ATTEMPTS - 1):
        try:
            return generate_latest(registry)
        except FileNotFoundError:
            continue
    return generate_latest(registry)


class _WorkerFiles(Collector):
    """prometheus_client's multiprocess collection, without the files still being created."""

    def __init__(self, folder: str) -> None:
        self._folder = Path(folder)

    def collect(self) -> Iterable[Metric]:
        files = [str(path) for path in self._folder.glob("*.db") if _has_header(path)]
        return MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call,no-any-return]


def _has_header(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:  # archived since the folder was listed
        return False


_read_values: Any = MmapedDict.read_all_values_from_file
_open_values: Any = MmapedDict

#: The kinds of value file this server writes (it has no gauges, whose modes do not add up).
_ADDITIVE_KINDS = ("counter", "histogram")


def archive_dead_worker(folder: str, pid: int) -> None:
    """Add a dead worker's counts into ``<kind>_archive.db`` and remove its files.

    Counter values and histogram buckets and sums are stored raw, so adding them per key is
    exact. The archive is written aside and swapped in; a scrape between the swap and the
    removal of the dead worker's file counts that worker twice for an instant, once per
    worker's end.
    """
    for kind in _ADDITIVE_KINDS:
        dead = Path(folder) / f"{kind}_{pid}.db"
        if not dead.exists():
            continue
        archive = Path(folder) / f"{kind}_archive.db"
        totals: dict[str, float] = {}
        for path in (archive, dead):
            if path.exists():
                for key, value, _timestamp, _position in _read_values(str(path)):
                    totals[key] = totals.get(key, 0.0) + value
        aside = Path(folder) / f".{kind}_archive.tmp"  # not *.db: scrapes must not read it yet
        written: Any = _open_values(str(aside))  # prometheus_client is untyped here
        try:
            for key, value in totals.items():
                written.write_value(key, value, 0.0)
        finally:
            written.close()
        os.replace(aside, archive)
        dead.unlink()
