"""Through a real gunicorn with two workers: ``/metrics`` adds up every worker's counts, whichever
worker answers the scrape, and a counts folder given by the operator is emptied at start."""

from __future__ import annotations

import signal
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scim_server.store.db import Database
from tests.conftest import make_tenant
from tests.gunicorn.server import call, serve

# What is tested here is gunicorn's and the HTTP layer's, the same whatever the database (the
# database's part of it runs on both in tests/api): one database, for a faster suite.
pytestmark = [
    pytest.mark.gunicorn,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

REQUESTS = 40


def listed(base_url: str) -> float:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "scim_http_requests_total" and sample.labels == {
                "operation": "user.list",
                "status": "200",
            }:
                return sample.value
    return 0.0


def test_a_scrape_counts_every_worker(database: Database, tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"stale counts of an earlier run")
    tenant = make_tenant(database, "metrics")
    environment = {"PROMETHEUS_MULTIPROC_DIR": str(folder)}
    with serve(
        database.url, workers=2, log_path=tmp_path / "server.log", environment=environment
    ) as server:
        # the master (serve execs gunicorn: same pid) holds the app's unlabelled counters
        master = f"counter_{server.process.pid}.db"
        sent = 0
        workers: set[str] = set()
        while sent < REQUESTS or len(workers) < 2:  # until both workers have answered some
            assert sent < 50 * REQUESTS, f"one worker answered all {sent} requests"
            # a new connection each: gunicorn's workers take turns accepting them
            assert call("GET", f"{server.base_url}/scim/v2/Users", tenant.token).status == 200
            sent += 1
            workers = {path.name for path in folder.glob("counter_*.db")} - {master}
        assert "counter_999999.db" not in workers
        assert [listed(server.base_url) for _ in range(6)] == [sent] * 6


def test_recycled_workers_leave_their_counts_and_no_files(
    database: Database, tmp_path: Path
) -> None:
    """Workers recycled every few requests (``max_requests``): the folder stays two files per
    live worker plus the archive and the master's, and the counts stay exact."""
    folder = tmp_path / "metrics"
    tenant = make_tenant(database, "recycled")
    environment = {
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "GUNICORN_CMD_ARGS": "--max-requests 4 --max-requests-jitter 0",
    }
    with serve(
        database.url, workers=2, log_path=tmp_path / "server.log", environment=environment
    ) as server:
        for _ in range(REQUESTS):
            assert call("GET", f"{server.base_url}/scim/v2/Users", tenant.token).status == 200
        time.sleep(1)  # the last recycled workers' ends reach the master
        files = sorted(path.name for path in folder.glob("*.db"))
        assert len(files) <= 2 * 2 + 2 + 1, files  # live workers, archives, the master
        assert "counter_archive.db" in files
        # the scrapes themselves recycle workers too: each sees every list request
        assert {listed(server.base_url) for _ in range(6)} == {REQUESTS}


def test_a_reload_keeps_the_counts(database: Database, tmp_path: Path) -> None:
    tenant = make_tenant(database, "reload")
    with serve(database.url, workers=2, log_path=tmp_path / "server.log") as server:
        for _ in range(5):
            assert call("GET", f"{server.base_url}/scim/v2/Users", tenant.token).status == 200
        server.process.send_signal(signal.SIGHUP)  # gunicorn re-reads its configuration
        time.sleep(2)
        assert listed(server.base_url) == 5
