"""Group commit of read events (``audit.recorder``): concurrent requests share a transaction for
their events, and still every request has exactly one event, in one unbroken chain, committed
before its response, and an event the database refuses costs no other request its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from scim_server.audit.chain import append, verify
from scim_server.audit.events import EventDraft
from scim_server.audit.recorder import EventRecorder
from scim_server.store.db import Database
from scim_server.store.models import AuditEvent
from tests.conftest import Api, Tenant, make_tenant


def _events(database: Database, org_id: int) -> list[AuditEvent]:
    with database.transaction(write=False) as session:
        query = select(AuditEvent).where(AuditEvent.org_id == org_id).order_by(AuditEvent.seq)
        return list(session.scalars(query))


def _in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(n)`` in ``count`` threads started together; their results (or exceptions)."""
    results: list[Any] = [None] * count
    start = threading.Barrier(count)

    def run(n: int) -> None:
        start.wait()
        try:
            results[n] = work(n)
        except Exception as error:  # handed back to the test
            results[n] = error

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request never finished"
    return results


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_concurrent_reads_each_get_one_event_in_an_unbroken_chain(
    app: Flask, database: Database, api: Api
) -> None:
    user = api.create_user("reader@example.com")
    clients = 8

    def read(n: int) -> tuple[int, str]:
        response = Api(app.test_client(), api.tenant).get(
            f"/Users/{user['id']}", headers={"X-Request-Id": f"read-{n}"}
        )
        return response.status_code, response.headers["X-Request-Id"]

    results = [r for _ in range(5) for r in _in_threads(clients, read)]
    assert all(status == 200 for status, _ in results), results
    events = _events(database, api.tenant.org_id)
    reads = [e for e in events if e.operation == "user.read"]
    assert sorted(e.request_id for e in reads) == sorted(rid for _, rid in results)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    with database.transaction(write=False) as session:
        assert verify(session, api.tenant.org_id).ok


def _draft(tenant: Tenant | None, n: int) -> EventDraft:
    return EventDraft(
        operation="user.read",
        org_id=tenant.org_id if tenant else 987_654_321,  # an organisation without a chain
        actor_type="connection",
        request_id=f"batch-{n}",
        status=200,
    )


def test_a_batch_with_an_event_the_database_refuses_records_all_the_others(
    database: Database, tenant: Tenant
) -> None:
    other = make_tenant(database)
    recorder = EventRecorder(database)
    drafts = [_draft(tenant, 0)] + [_draft([tenant, other, None][n % 3], n) for n in range(1, 7)]
    outcomes: dict[int, Any] = {}

    def record(n: int) -> None:
        try:
            recorder.record(drafts[n])
            outcomes[n] = "recorded"
        except Exception as error:  # handed back to the test
            outcomes[n] = error

    # Hold the tenant's chain (PostgreSQL: its head row; SQLite: the write lock) so that the
    # first event's writer waits and the other six queue behind it, to be written as one batch.
    with database.transaction(write=True) as holder:
        append(holder, _draft(tenant, 99))
        first = threading.Thread(target=record, args=(0,))
        first.start()
        _wait_until(lambda: recorder.writing)
        rest = [threading.Thread(target=record, args=(n,)) for n in range(1, 7)]
        for thread in rest:
            thread.start()
        _wait_until(lambda: recorder.queued == 6)
    for thread in [first, *rest]:
        thread.join(timeout=60)

    refused = {n for n, outcome in outcomes.items() if isinstance(outcome, Exception)}
    assert refused == {n for n in range(7) if drafts[n].org_id == 987_654_321}
    assert all(outcomes[n] == "recorded" for n in range(7) if n not in refused)
    for owner in (tenant, other):
        recorded = [e.request_id for e in _events(database, owner.org_id)]
        expected = [d.request_id for d in drafts if d.org_id == owner.org_id]
        assert sorted(r for r in recorded if r.startswith("batch-") and r != "batch-99") == sorted(
            expected
        )
        with database.transaction(write=False) as session:
            assert verify(session, owner.org_id).ok


@pytest.mark.parametrize("events", [1, 3])
def test_a_quiet_server_writes_each_event_at_once(
    database: Database, tenant: Tenant, events: int
) -> None:
    recorder = EventRecorder(database)
    for n in range(events):
        recorder.record(_draft(tenant, n))
        assert [e.request_id for e in _events(database, tenant.org_id)][-1] == f"batch-{n}"
    assert recorder.queued == 0


def test_a_batch_that_cannot_reach_the_database_fails_at_once(tmp_path: Path) -> None:
    """Retrying each event alone helps when the database refused one of them, never when it
    cannot be reached: every waiting request would wait once more per event queued before it."""
    unreachable = Database(f"sqlite:///{tmp_path}/missing-folder/scim.db")
    attempts: list[int] = []

    def slow_connect(*_args: Any) -> None:  # a slow network: the queue fills meanwhile
        attempts.append(1)
        time.sleep(0.2)

    event.listen(unreachable.engine, "do_connect", slow_connect)
    recorder = EventRecorder(unreachable)
    outcomes: dict[int, Any] = {}

    def record(n: int) -> None:
        try:
            recorder.record(_draft(None, n))
            outcomes[n] = "recorded"
        except Exception as error:  # handed back to the test
            outcomes[n] = error

    first = threading.Thread(target=record, args=(0,))
    first.start()
    _wait_until(lambda: recorder.writing)
    rest = [threading.Thread(target=record, args=(n,)) for n in range(1, 6)]
    for thread in rest:
        thread.start()
    _wait_until(lambda: recorder.queued == 5 or not first.is_alive())
    for thread in [first, *rest]:
        thread.join(timeout=60)
    assert all(isinstance(outcomes[n], OperationalError) for n in range(6)), outcomes
    assert len(attempts) == 2  # the first event's batch, then one for the five queued behind it
