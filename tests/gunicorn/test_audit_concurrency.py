"""Issue #3 acceptance: concurrent writers in several processes never fork the provisioning log.

Four gunicorn workers on PostgreSQL take 400 concurrent writes from two connections of one
organisation. The chain head row (``SELECT ... FOR UPDATE``) is the only thing that orders them,
so afterwards ``audit verify`` must pass and the log must hold exactly one event per request —
seqs 1..N without gap or duplicate — including the refusals, which are recorded in a transaction
of their own after the write rolled back. Only PostgreSQL has real row locks across processes
(SQLite serialises whole write transactions), so the test is selected for PostgreSQL alone; the
``database_url`` fixture skips it with its reason shown, or fails it under ``CI=true``.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select

from scim_server.store.db import Database
from scim_server.store.models import AuditChain, AuditEvent, Organization
from tests.conftest import PATCH_SCHEMA, USER_SCHEMA
from tests.gunicorn.server import Reply, Server, call, cli, run_cli, serve

pytestmark = [
    pytest.mark.gunicorn,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

WORKERS = 4
THREADS = 32
LIFECYCLES = 80  # POST, PATCH, PUT, DELETE of one user: 4 requests each
CONTESTS = 20  # two racing POSTs of one userName, then two racing PATCHes: 4 requests each
REQUESTS = 4 * LIFECYCLES + 4 * CONTESTS
SETUP_OPERATIONS = ["org.create", "connection.create", "connection.create"]


@pytest.fixture(scope="module")
def server(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log_path = tmp_path_factory.mktemp("gunicorn-audit") / "stderr.log"
    with serve(database.url, workers=WORKERS, log_path=log_path) as running:
        yield running


@dataclass(frozen=True)
class Sent:
    request_id: str
    connection: int
    method: str
    status: int


class Client:
    """Sends SCIM requests as one of two connections and records every one it sent."""

    def __init__(self, base_url: str, tokens: list[str]) -> None:
        self.base_url = base_url
        self.tokens = tokens
        self.sent: list[Sent] = []
        self._lock = threading.Lock()

    def __call__(
        self,
        connection: int,
        method: str,
        path: str,
        body: Any = None,
        if_match: str | None = None,
    ) -> Reply:
        request_id = f"conc-{uuid.uuid4().hex}"
        headers = {"X-Request-Id": request_id}
        if if_match:
            headers["If-Match"] = if_match
        reply = call(
            method,
            f"{self.base_url}/scim/v2{path}",
            self.tokens[connection],
            body,
            headers,
            timeout=60,
        )
        with self._lock:
            self.sent.append(Sent(request_id, connection, method, reply.status))
        return reply


def _user(user_name: str, **attributes: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": user_name, **attributes}


def _display_name(value: str) -> dict[str, Any]:
    return {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "path": "displayName", "value": value}],
    }


def lifecycle(client: Client, index: int) -> None:
    """Create, patch, replace and delete one user, by one connection (the one owning it: DESIGN
    §5.4 item 7); lifecycles alternate the two connections."""
    mine = other = index % 2
    user_name = f"life{index}@example.com"
    created = client(mine, "POST", "/Users", _user(user_name))
    if created.status != 201:
        return
    path = f"/Users/{created.body['id']}"
    patched = client(other, "PATCH", path, _display_name(f"Patched {index}"))
    if patched.status != 200:
        return
    replaced = client(
        mine,
        "PUT",
        path,
        _user(user_name, displayName=f"Replaced {index}", name={"givenName": f"G{index}"}),
        if_match=patched.etag,
    )
    if replaced.status != 200:
        return
    client(other, "DELETE", path, if_match=replaced.etag)


def contest(client: Client, pairs: ThreadPoolExecutor, index: int) -> None:
    """Both connections create the same userName at once (one 201, one 409), then the owning
    connection sends two PATCHes with the same ``If-Match`` at once (one 200, one 412):
    refusals recorded beside racing writes."""

    def race(send: Callable[[int], Reply]) -> list[Reply]:
        return list(pairs.map(send, [0, 1]))

    user_name = f"contest{index}@example.com"
    created = race(lambda connection: client(connection, "POST", "/Users", _user(user_name)))
    winners = [i for i, reply in enumerate(created) if reply.status == 201]
    if len(winners) != 1:
        return
    owner = winners[0]
    path = f"/Users/{created[owner].body['id']}"
    etag = created[owner].etag
    race(
        lambda attempt: client(
            owner, "PATCH", path, _display_name(f"Contest {index} attempt {attempt}"), etag
        )
    )


def _organisation_id(database: Database, slug: str) -> int:
    with database.transaction(write=False) as session:
        org_id = session.scalar(select(Organization.id).where(Organization.slug == slug))
    assert org_id is not None
    return org_id


def test_four_workers_four_hundred_concurrent_writes_keep_one_chain(
    server: Server, database: Database
) -> None:
    slug = f"conc-{uuid.uuid4().hex[:8]}"
    cli(database.url, "org", "create", slug, "--name", "Concurrency")
    connections = [
        json.loads(
            cli(database.url, "connection", "create", "--org", slug, "--name", name, "--json")
        )
        for name in ("connection A", "connection B")
    ]
    org_id = _organisation_id(database, slug)
    client = Client(server.base_url, [c["token"] for c in connections])

    tasks: list[Callable[[], None]] = []
    with ThreadPoolExecutor(max_workers=2 * CONTESTS) as pairs:
        tasks += [partial(lifecycle, client, i) for i in range(LIFECYCLES)]
        tasks += [partial(contest, client, pairs, i) for i in range(CONTESTS)]
        random.Random(3).shuffle(tasks)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            for future in [pool.submit(task) for task in tasks]:
                future.result()
        elapsed = time.monotonic() - started

    statuses = Counter(sent.status for sent in client.sent)
    assert statuses[500] == 0, f"500s from the server:\n{server.log()}"
    assert "Traceback" not in server.log_path.read_text(), server.log()
    assert len(client.sent) == REQUESTS, statuses
    assert statuses == {
        201: LIFECYCLES + CONTESTS,
        200: 2 * LIFECYCLES + CONTESTS,
        204: LIFECYCLES,
        409: CONTESTS,
        412: CONTESTS,
    }, f"{statuses} in {elapsed:.1f}s"
    # both connections write throughout (the contests' PATCHes go to whichever won the create)
    per_connection = Counter(sent.connection for sent in client.sent)
    assert set(per_connection) == {0, 1}
    assert min(per_connection.values()) >= REQUESTS // 3

    verified = run_cli(database.url, "audit", "verify", "--org", slug, "--json")
    expected_events = len(SETUP_OPERATIONS) + len(client.sent)
    verdict = json.loads(verified.stdout)
    last_hash = verdict.pop("last_hash")
    assert verdict == {
        "org": slug,
        "ok": True,
        "org_id": org_id,
        "events": expected_events,
        "first_seq": 1,
        "last_seq": expected_events,
        "broken": None,
        "signatures_checked": False,
        "signed_checkpoint": None,
        "unchecked_checkpoints": [],
    }, verified.stdout + verified.stderr
    assert verified.returncode == 0

    with database.transaction(write=False) as session:
        events = session.execute(
            select(
                AuditEvent.seq,
                AuditEvent.operation,
                AuditEvent.request_id,
                AuditEvent.status,
                AuditEvent.actor,
                AuditEvent.hash,
            )
            .where(AuditEvent.org_id == org_id)
            .order_by(AuditEvent.seq)
        ).all()
        head = session.get(AuditChain, org_id)
    # then the verification's own event
    assert [event.seq for event in events] == list(range(1, expected_events + 2))
    assert events.pop().operation == "audit.verify"
    assert head is not None
    assert head.last_seq == expected_events + 1
    assert [event.operation for event in events[:3]] == SETUP_OPERATIONS

    # One event per request, and each says what the client saw.
    logged = {event.request_id: event for event in events[3:]}
    assert events[-1].hash == last_hash
    assert len(logged) == len(events) - 3, "a request id was logged twice"
    assert set(logged) == {sent.request_id for sent in client.sent}
    for sent in client.sent:
        event = logged[sent.request_id]
        assert event.status == sent.status, (sent, event)
        assert event.actor == connections[sent.connection]["connection_id"], (sent, event)
    assert Counter(event.operation for event in events[3:]) == {
        "user.create": LIFECYCLES + 2 * CONTESTS,
        "user.patch": LIFECYCLES + 2 * CONTESTS,
        "user.replace": LIFECYCLES,
        "user.delete": LIFECYCLES,
    }
