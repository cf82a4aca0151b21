"""Prometheus metrics at ``/metrics`` (DESIGN §8), summed over every gunicorn worker.

What an operator alerts on: request rates and latencies by operation (``user.patch``,
``group.members.add``, ...) and status, so 5xx, 429 and 503 (database down, deprovisioning held)
show up per operation; and the audit events that could not be recorded, which must stay at zero.
Labels never name an organisation, a connection or a user: the endpoint is unauthenticated, like
``/healthz``, and tells nothing about any tenant.

Under gunicorn (``deploy/gunicorn.conf.py``) each worker writes its counts to files in
``PROMETHEUS_MULTIPROC_DIR`` and a scrape adds them up, so a scrape that lands on any worker sees
the whole server, and a worker recycled by ``max_requests`` keeps its counts.
"""

from __future__ import annotations

import os
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

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


@bp.get("/metrics")
def metrics() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return Response(body, content_type=CONTENT_TYPE_LATEST)
