"""A write that PostgreSQL aborts for a concurrent transaction's sake (a deadlock victim) is run
again, so the IdP gets its answer, not a 503 for a conflict that was never its own; the audit
log holds one event for the request, the answer's. SQLite runs one writer at a time: the same
situation there is a write that waits for another, and it must get its answer too."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from werkzeug.test import TestResponse

from scim_server.app import create_app
from scim_server.config import Settings
from scim_server.services import access
from scim_server.store.db import Database
from tests.conftest import USER_SCHEMA, Api, StatementCounter, make_tenant, patch_body

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


def _delete_in_background(
    api: Api, user_id: str, rid: str
) -> tuple[threading.Thread, dict[str, Any]]:
    answer: dict[str, TestResponse] = {}

    def send() -> None:
        answer["response"] = api.delete(f"/Users/{user_id}", headers={"X-Request-Id": rid})

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread, answer


def _wait_for_a_lock_wait(
    database: Database, timeout: float = 10.0, what: str = "the DELETE"
) -> None:
    """Until some other session of the test database waits for a lock."""
    deadline = time.monotonic() + timeout
    with database.engine.connect() as observer:
        while time.monotonic() < deadline:
            waiting = observer.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
            observer.rollback()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError(f"{what} never waited for the lock held against it")


def _events_of(database: Database, rid: str) -> list[tuple[str, int]]:
    with database.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT operation, status FROM audit_events WHERE request_id = :rid"),
            {"rid": rid},
        )
        return [(operation, status) for operation, status in rows]


def test_a_delete_that_meets_locks_taken_in_the_opposite_order_gets_its_answer(
    api: Api, database: Database
) -> None:
    user = api.create_user(f"victim-{uuid.uuid4().hex[:8]}@example.com")
    rid = f"conflict-{uuid.uuid4().hex[:12]}"
    if database.is_sqlite:
        path = database.engine.url.database
        assert path is not None
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        thread, answer = _delete_in_background(api, user["id"], rid)
        time.sleep(0.5)  # the DELETE waits for the write lock meanwhile
        holder.execute("COMMIT")
        holder.close()
    else:
        # Another transaction holds the user, then asks for the organisation the DELETE already
        # holds (shared) while it waits for the user: a cycle PostgreSQL breaks by aborting the
        # DELETE after deadlock_timeout (1 s; 10 s for the holder, so the DELETE is the victim).
        engine = create_engine(database.url)
        try:
            with engine.connect() as holder:
                holder.execute(text("SET LOCAL deadlock_timeout = '10s'"))
                holder.execute(
                    text("SELECT pk FROM users WHERE id = :id FOR KEY SHARE"), {"id": user["id"]}
                )
                thread, answer = _delete_in_background(api, user["id"], rid)
                _wait_for_a_lock_wait(database)
                holder.execute(
                    text("SELECT id FROM organizations WHERE id = :org FOR UPDATE"),
                    {"org": api.tenant.org_id},
                )  # returns once the DELETE has been aborted
                holder.commit()
        finally:
            engine.dispose()
    thread.join(timeout=30)
    response = answer["response"]
    assert response.status_code == 204, response.get_json()
    assert api.get(f"/Users/{user['id']}").status_code == 404
    assert _events_of(database, rid) == [("user.delete", 204)]


def test_a_delete_locks_the_users_groups_before_the_user(
    api: Api, database: Database, count_statements: StatementCounter
) -> None:
    """Group writes lock their group, then its members; a user's delete, which changes the
    user's groups, takes them in the same order (PostgreSQL; SQLite has one writer)."""
    user = api.create_user(f"member-{uuid.uuid4().hex[:8]}@example.com")
    group = api.post(
        "/Groups",
        {
            "schemas": [GROUP_SCHEMA],
            "displayName": f"g-{uuid.uuid4().hex[:8]}",
            "members": [{"value": user["id"]}],
        },
    )
    created = group.get_json()  # read the streamed body: it ends the request
    assert group.status_code == 201, created
    count_statements.statements.clear()
    assert api.delete(f"/Users/{user['id']}").status_code == 204
    locks = [
        " ".join(s.split())
        for s in count_statements.statements
        if "FOR UPDATE" in s and s.lstrip().startswith("SELECT")
    ]
    if database.is_sqlite:
        assert locks == []
        return
    groups = next(n for n, s in enumerate(locks) if s.startswith("SELECT groups.pk FROM groups"))
    users = next(n for n, s in enumerate(locks) if "FROM users" in s and "FOR UPDATE OF users" in s)
    assert groups < users, locks
    assert api.get(f"/Groups/{created['id']}").get_json().get("members") is None


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_admin_change_of_rules_is_not_starved_by_user_writes(
    api: Api, database: Database
) -> None:
    """PostgreSQL: an admin's change of the organisation's rules waits for the user writes in
    progress, and writes that arrive after it wait for it; with row locks alone each new write
    joined the current ones and a busy IdP kept the admin waiting until its traffic stopped.
    (SQLite runs one writer at a time: no such queue to jump.)"""
    org = api.tenant.org_id
    finished: dict[str, float] = {}

    def admin_change() -> None:
        with database.transaction(write=True) as session:
            access.lock_rules(session, org)
            # taken while the lock is held: a write that needs it cannot finish before this
            # (timed after the commit, a thread switch could put the write's time first)
            finished["admin"] = time.monotonic()

    def user_write() -> None:
        api.create_user(f"later-{uuid.uuid4().hex[:8]}@example.com")
        finished["write"] = time.monotonic()

    with database.transaction(write=True) as in_progress:
        access.hold_rules(in_progress, org)  # a user write in progress
        admin = threading.Thread(target=admin_change, daemon=True)
        admin.start()
        _wait_for_a_lock_wait(database)
        later = threading.Thread(target=user_write, daemon=True)
        later.start()
        later.join(timeout=1.0)
        assert later.is_alive(), "a write that came after the admin went ahead of it"
    admin.join(timeout=30)
    later.join(timeout=30)
    assert finished["admin"] < finished["write"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_admin_change_of_rules_waits_for_its_own_organisation_only(
    app: Flask, api: Api, database: Database
) -> None:
    """The rules lock is the organisation's: another organisation's writes go on while an admin
    changes this one's rules, whatever plan PostgreSQL picks for the organisations table (a
    sequential scan, once it has statistics, reads every organisation's row)."""
    other = Api(app.test_client(), make_tenant(database, "other"))
    with database.engine.begin() as connection:
        connection.execute(text("ANALYZE organizations"))
    with database.transaction(write=True) as admin:
        access.lock_rules(admin, api.tenant.org_id)
        write = threading.Thread(
            target=other.create_user, args=(f"elsewhere-{uuid.uuid4().hex[:8]}@example.com",)
        )
        write.start()
        write.join(timeout=10)
        assert not write.is_alive(), "another organisation's write waited for this one's admin"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_rules_change_and_a_write_that_references_the_organisation_both_finish(
    api: Api, database: Database
) -> None:
    """A group created with members inserts its row (the foreign key holds the organisation row
    FOR KEY SHARE) before it takes the rules to recompute access; an admin's change of rules
    taken in between must wait its turn, not deadlock with it."""
    org = api.tenant.org_id
    outcome: dict[str, BaseException | None] = {}

    def admin_change() -> None:
        try:
            with database.transaction(write=True) as session:
                access.lock_rules(session, org)
            outcome["admin"] = None
        except BaseException as error:
            outcome["admin"] = error

    with database.transaction(write=True) as writer:
        writer.execute(
            text("SELECT id FROM organizations WHERE id = :org FOR KEY SHARE"), {"org": org}
        )
        admin = threading.Thread(target=admin_change, daemon=True)
        admin.start()
        admin.join(timeout=1.5)  # it takes the rules; it must not need the row the writer holds
        access.hold_rules(writer, org)  # waits for the admin's change to commit
    admin.join(timeout=30)
    assert outcome == {"admin": None}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_request_kept_waiting_by_a_long_transaction_answers_503_before_an_idp_gives_up(
    api: Api, database: Database
) -> None:
    """A large ``users import`` holds what SCIM writes need (the users it touches, the seat
    lock) until it commits, minutes for tens of thousands of rows. Okta gives up after 60 s
    and retries, then meets a 409 for a user it believes was never created. A request that
    waits longer than SCIM_LOCK_TIMEOUT_SECONDS answers 503 with Retry-After, writing
    nothing but its event."""
    user = api.create_user("held@example.com")
    settings = Settings.from_env(
        {"SCIM_DATABASE_URL": database.url, "SCIM_LOCK_TIMEOUT_SECONDS": "1"}
    )
    served = create_app(settings)  # its own engine, as the server's: with the lock timeout
    try:
        client = Api(served.test_client(), api.tenant)
        rid = f"held-{uuid.uuid4().hex[:8]}"
        answers: list[TestResponse] = []
        patch = threading.Thread(
            target=lambda: answers.append(
                client.patch(
                    f"/Users/{user['id']}",
                    patch_body({"op": "replace", "path": "displayName", "value": "Waited"}),
                    headers={"X-Request-Id": rid},
                )
            ),
            daemon=True,
        )
        with database.engine.begin() as holder:  # the import's transaction, say
            holder.execute(
                text("SELECT pk FROM users WHERE id = :id FOR UPDATE"), {"id": user["id"]}
            )
            patch.start()
            patch.join(timeout=20)
            assert not patch.is_alive(), "the request waited as long as the lock was held"
        (response,) = answers
        assert response.status_code == 503, response.get_json()
        assert response.headers["Retry-After"] == "30"
        assert "waited more than 1 s" in response.get_json()["detail"]
        assert api.get(f"/Users/{user['id']}").get_json().get("displayName") is None
        assert _events_of(database, rid) == [("user.patch", 503)]
    finally:
        served.extensions["scim_db"].engine.dispose()


def _impatient_client(database: Database, api: Api) -> tuple[Api, Flask]:
    """The server as deployed: its own engine, whose statements wait 1 s for a lock."""
    settings = Settings.from_env(
        {"SCIM_DATABASE_URL": database.url, "SCIM_LOCK_TIMEOUT_SECONDS": "1"}
    )
    served = create_app(settings)
    return Api(served.test_client(), api.tenant), served


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_bulk_request_stops_at_its_first_lock_wait_that_runs_out(
    api: Api, database: Database
) -> None:
    """Each operation of a /Bulk request is its own transaction: one kept waiting past the
    lock timeout answers 503 in its slot and the request stops there, rather than every
    following operation waiting out the timeout in turn (a 500 each, before)."""
    user = api.create_user("bulk-held@example.com")
    client, served = _impatient_client(database, api)
    replace_name = {"op": "replace", "path": "displayName", "value": "Waited"}
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {
                "method": "POST",
                "bulkId": "new",
                "path": "/Users",
                "data": {"schemas": [USER_SCHEMA], "userName": "bulk-new@example.com"},
            },
            *(
                {
                    "method": "PATCH",
                    "path": f"/Users/{user['id']}",
                    "data": patch_body(replace_name),
                }
                for _ in range(3)
            ),
        ],
    }
    answers: list[TestResponse] = []
    bulk = threading.Thread(target=lambda: answers.append(client.post("/Bulk", body)), daemon=True)
    try:
        with database.engine.begin() as holder:
            holder.execute(
                text("SELECT pk FROM users WHERE id = :id FOR UPDATE"), {"id": user["id"]}
            )
            bulk.start()
            bulk.join(timeout=20)
            assert not bulk.is_alive(), "the bulk request waited as long as the lock was held"
    finally:
        served.extensions["scim_db"].engine.dispose()
    (response,) = answers
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["Operations"]
    assert [r["status"] for r in results] == ["201", "503"]  # the rest never ran
    assert "another transaction holds" in results[1]["response"]["detail"]
    assert api.get(f"/Users/{user['id']}").get_json().get("displayName") is None


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_read_answered_while_the_chain_head_is_held_long_keeps_its_event(
    api: Api, database: Database
) -> None:
    """The events of reads are sealed after the read, in the recorder's own transaction. Its
    only lock is the chain head, which a writer may hold longer than the lock timeout (a large
    import seals its thousands of events at its end): the read's event waits for it, and is
    never lost to the timeout."""
    user = api.create_user("read-held@example.com")
    client, served = _impatient_client(database, api)
    rid = f"read-held-{uuid.uuid4().hex[:8]}"
    answers: list[TestResponse] = []
    read = threading.Thread(
        target=lambda: answers.append(
            client.get(f"/Users/{user['id']}", headers={"X-Request-Id": rid})
        ),
        daemon=True,
    )
    try:
        with database.engine.begin() as holder:
            holder.execute(
                text("SELECT last_seq FROM audit_chains WHERE org_id = :o FOR UPDATE"),
                {"o": api.tenant.org_id},
            )
            read.start()
            _wait_for_a_lock_wait(database, what="the read's event")
            time.sleep(1.5)  # past the 1 s lock timeout
            assert read.is_alive(), "the read was answered before its event was sealed"
        read.join(timeout=20)
    finally:
        served.extensions["scim_db"].engine.dispose()
    (response,) = answers
    assert response.status_code == 200
    assert _events_of(database, rid) == [("user.read", 200)]
