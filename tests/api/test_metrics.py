"""``/metrics`` (DESIGN §8): Prometheus counts and latencies by operation and status, nothing
about any tenant, no authentication (like ``/healthz``)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Api


def scrape(app: Flask) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def requests(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], op: str, status: str
) -> float:
    key = ("scim_http_requests_total", (("operation", op), ("status", status)))
    return samples.get(key, 0.0)


def test_requests_are_counted_by_operation_and_status(app: Flask, api: Api) -> None:
    before = scrape(app)
    user = api.create_user("metrics@example.com")
    for _ in range(3):
        assert api.get(f"/Users/{user['id']}").status_code == 200
    assert api.get("/Users/no-such-user").status_code == 404
    assert app.test_client().get("/scim/v2/Users").status_code == 401
    after = scrape(app)
    for op, status, more in (
        ("user.create", "201", 1),
        ("user.read", "200", 3),
        ("user.read", "404", 1),
        ("user.list", "401", 1),
    ):
        assert requests(after, op, status) - requests(before, op, status) == more, (op, status)
    count = ("scim_http_request_duration_seconds_count", (("operation", "user.read"),))
    assert after[count] - before.get(count, 0.0) == 4
    assert after[("scim_audit_record_failures_total", ())] == before.get(
        ("scim_audit_record_failures_total", ()), 0.0
    )


def test_nothing_names_a_tenant(app: Flask, api: Api) -> None:
    api.create_user("tenant-secret@example.com")
    text = app.test_client().get("/metrics").get_data(as_text=True)
    for private in (api.tenant.slug, api.tenant.token, api.tenant.connection_id, "tenant-secret"):
        assert private not in text


def test_a_scrape_while_the_master_archives_a_recycled_worker_answers(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's file can vanish between the scrape listing the folder and reading it (the
    master archiving a recycled worker); the scrape must still answer, with every count.

    Here a thread plays the master: it writes a "worker's" counter file and archives it, over
    and over, while scrapes run (a 500 in about one scrape of ten before the fix)."""
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    from scim_server.http.metrics import archive_dead_worker

    folder = tmp_path / "metrics"
    folder.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    key = mmap_key("scim_audit_record_failures_total", "scim_audit_record_failures", [], [], "")
    stop = threading.Event()
    rounds = [0]

    def recycle() -> None:
        pid = 1_000_000
        while not stop.is_set():
            pid += 1
            values = MmapedDict(str(folder / f"counter_{pid}.db"))
            values.write_value(key, 1.0, 0.0)
            values.close()
            archive_dead_worker(str(folder), pid)
            rounds[0] += 1
            time.sleep(0.002)  # a worker recycled every 2 ms: far more often than a real one

    master = threading.Thread(target=recycle)
    master.start()
    statuses = []
    try:
        while rounds[0] < 200 or len(statuses) < 200:  # the race is run, not just the scrapes
            statuses.append(app.test_client().get("/metrics").status_code)
    finally:
        stop.set()
        master.join()
    assert set(statuses) == {200}
