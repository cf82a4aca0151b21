"""Tamper evidence and retention (DESIGN §6, issue #3 item 4): ``scim-server audit verify`` names
the first event that was edited or removed, and ``audit prune`` cuts old events without breaking
verification, leaving a checkpoint that records where the log was cut."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select, text

from scim_server.audit.chain import append, canonical_fields, event_hash
from scim_server.audit.events import EventDraft
from scim_server.services import audit_log
from scim_server.store.db import Database
from scim_server.store.models import AuditEvent
from tests.api.audit_support import SIGNING_KEY, Auditor, auditor_for, prune_log, run_cli
from tests.conftest import Api, make_tenant, patch_body


@pytest.fixture
def auditor(app: Flask, database: Database, api: Api) -> Auditor:
    return auditor_for(app, database, api.tenant.slug)


@pytest.fixture
def events(api: Api, auditor: Auditor) -> list[dict[str, Any]]:
    """Six events: three creates, a patch, a read and a delete (seq 1..6)."""
    users = [api.create_user(f"chain{n}@example.com") for n in range(3)]
    patch = patch_body({"op": "replace", "path": "displayName", "value": "Renamed"})
    assert api.patch(f"/Users/{users[1]['id']}", patch).status_code == 200
    assert api.get(f"/Users/{users[0]['id']}").status_code == 200
    assert api.delete(f"/Users/{users[2]['id']}").status_code == 204
    found = auditor.events()
    assert [event["seq"] for event in found] == [1, 2, 3, 4, 5, 6]
    return found


def verify(database: Database, slug: str) -> tuple[int, dict[str, Any]]:
    result = run_cli(database, "audit", "verify", "--org", slug, "--json")
    return result.exit_code, json.loads(result.stdout)


def _execute(database: Database, sql: str, **params: Any) -> int:
    with database.engine.begin() as connection:
        return connection.execute(text(sql), params).rowcount


def test_an_untouched_log_verifies(api: Api, database: Database, events: Any) -> None:
    code, result = verify(database, api.tenant.slug)
    assert code == 0
    assert result["ok"] is True
    assert result["org"] == api.tenant.slug
    assert result["broken"] is None
    assert result["first_seq"] == 1
    assert result["last_seq"] == result["events"] >= 7  # the six, then the auditor's listing

    human = run_cli(database, "audit", "verify", "--org", api.tenant.slug)
    assert human.exit_code == 0
    assert "verified" in human.stdout


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("detail", "nothing to see here"),
        ("user_name", "someone-else@example.com"),
        ("operation", "user.read"),  # a patch disguised as a read
        ("client_ip", "192.0.2.1"),
        ("status", 500),
    ],
)
def test_an_edited_event_is_named_by_its_seq(
    api: Api, database: Database, events: Any, column: str, value: Any
) -> None:
    changed = _execute(
        database,
        f"UPDATE audit_events SET {column} = :value WHERE org_id = :org AND seq = 4",
        value=value,
        org=api.tenant.org_id,
    )
    assert changed == 1
    code, result = verify(database, api.tenant.slug)
    assert code == 1
    assert result["ok"] is False
    assert result["broken"]["seq"] == 4
    assert "hash" in result["broken"]["reason"]

    human = run_cli(database, "audit", "verify", "--org", api.tenant.slug)
    assert human.exit_code == 1
    assert "BROKEN at seq 4" in human.stdout


def test_an_edited_event_with_a_recomputed_hash_is_caught_at_the_next_event(
    api: Api, database: Database, events: Any
) -> None:
    """Someone who knows the algorithm re-seals the edited event; the next one still holds the
    old hash."""
    with database.transaction(write=True) as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.org_id == api.tenant.org_id, AuditEvent.seq == 3)
        ).one()
        event.user_name = "nobody@example.com"
        event.hash = event_hash(canonical_fields(event))
    code, result = verify(database, api.tenant.slug)
    assert code == 1
    assert result["broken"]["seq"] == 4
    assert "prev_hash" in result["broken"]["reason"]


def test_a_deleted_middle_event_is_named(api: Api, database: Database, events: Any) -> None:
    deleted = _execute(
        database,
        "DELETE FROM audit_events WHERE org_id = :org AND seq = 3",
        org=api.tenant.org_id,
    )
    assert deleted == 1
    code, result = verify(database, api.tenant.slug)
    assert code == 1
    assert result["broken"]["seq"] == 3
    assert "3 is missing" in result["broken"]["reason"]


def test_deleting_the_oldest_events_without_a_checkpoint_is_caught(
    api: Api, database: Database, events: Any
) -> None:
    _execute(
        database, "DELETE FROM audit_events WHERE org_id = :org AND seq <= 2", org=api.tenant.org_id
    )
    code, result = verify(database, api.tenant.slug)
    assert code == 1
    assert result["broken"]["seq"] == 3
    assert "missing" in result["broken"]["reason"]


def test_deleting_the_newest_event_is_caught(api: Api, database: Database, events: Any) -> None:
    last = _execute(
        database,
        "DELETE FROM audit_events WHERE org_id = :org AND seq = "
        "(SELECT max(seq) FROM audit_events WHERE org_id = :org)",
        org=api.tenant.org_id,
    )
    assert last == 1
    code, result = verify(database, api.tenant.slug)
    assert code == 1
    assert result["broken"]["seq"] == result["last_seq"] + 1


def test_one_organisations_tampering_does_not_break_anothers_chain(
    app: Flask, database: Database, api: Api, events: Any
) -> None:
    other = make_tenant(database)
    Api(app.test_client(), other).create_user("bystander@example.com")
    _execute(
        database,
        "UPDATE audit_events SET detail = 'x' WHERE org_id = :org AND seq = 2",
        org=api.tenant.org_id,
    )
    assert verify(database, api.tenant.slug)[0] == 1
    code, result = verify(database, other.slug)
    assert (code, result["ok"], result["events"]) == (0, True, 1)


def _time(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00"))


def test_prune_leaves_a_checkpoint_and_the_log_still_verifies(
    api: Api, auditor: Auditor, database: Database, events: list[dict[str, Any]]
) -> None:
    before = events[3]["time"]  # the time of event 4: events recorded before it go
    cut = max(e["seq"] for e in events if _time(e) < _time(events[3]))
    assert cut == 3
    summary = prune_log(database, api.tenant.slug, before)
    assert summary["org"] == api.tenant.slug
    assert (summary["pruned"], summary["cut_seq"]) == (3, 3)

    remaining = auditor.events()
    assert remaining[0]["seq"] == 4
    assert remaining[0]["prevHash"] == events[2]["hash"]  # still sealed to what was cut
    [checkpoint] = [e for e in remaining if e["operation"] == "audit.prune"]
    assert checkpoint["seq"] == summary["checkpoint_seq"]
    assert checkpoint["actorType"] == "cli"
    assert checkpoint["actor"]
    assert checkpoint["resourceType"] == "AuditLog"
    assert checkpoint["changes"]["cut"] == {"seq": 3, "hash": events[2]["hash"]}
    assert checkpoint["changes"]["pruned"] == 3
    assert _time({"time": checkpoint["changes"]["before"]}) == _time(events[3])
    assert auditor.events("seq le 3") == []

    code, result = verify(database, api.tenant.slug)
    assert code == 0, result
    assert (result["ok"], result["first_seq"]) == (True, 4)

    # after a prune, an edit is still caught, and a second prune still verifies
    api.create_user("after-prune@example.com")
    latest = auditor.events()
    summary = prune_log(database, api.tenant.slug, latest[-1]["time"])
    assert summary["cut_seq"] == latest[-2]["seq"]  # the first checkpoint itself is cut now
    code, result = verify(database, api.tenant.slug)
    assert code == 0, result
    assert result["first_seq"] == latest[-1]["seq"]

    _execute(
        database,
        "UPDATE audit_events SET detail = 'edited' WHERE org_id = :org AND seq = :seq",
        org=api.tenant.org_id,
        seq=latest[-1]["seq"],
    )
    code, result = verify(database, api.tenant.slug)
    assert (code, result["broken"]["seq"]) == (1, latest[-1]["seq"])


def test_a_prune_before_every_event_removes_nothing_and_says_so(
    api: Api, auditor: Auditor, database: Database, events: Any
) -> None:
    summary = prune_log(database, api.tenant.slug, "2000-01-01")
    assert (summary["pruned"], summary["cut_seq"]) == (0, None)
    checkpoint = auditor.events('operation eq "audit.prune"')[0]
    assert checkpoint["changes"]["cut"] is None
    assert checkpoint["changes"]["pruned"] == 0
    assert [e["seq"] for e in auditor.events()][:6] == [1, 2, 3, 4, 5, 6]
    assert verify(database, api.tenant.slug)[0] == 0


def test_a_prune_of_everything_still_verifies(
    api: Api, auditor: Auditor, database: Database, events: Any
) -> None:
    summary = prune_log(database, api.tenant.slug, "2999-01-01")
    assert summary["pruned"] >= 6
    remaining = auditor.events()
    assert remaining[0]["operation"] == "audit.prune"
    assert remaining[0]["changes"]["cut"]["seq"] == remaining[0]["seq"] - 1
    code, result = verify(database, api.tenant.slug)
    assert code == 0, result


def test_prune_refuses_a_time_it_cannot_read(api: Api, database: Database) -> None:
    result = run_cli(
        database,
        "audit",
        "prune",
        "--org",
        api.tenant.slug,
        "--before",
        "soon",
        signing_key=SIGNING_KEY,
    )
    assert result.exit_code == 2
    assert "soon" in result.output


def _forge(database: Database, org_id: int, seq: int, after: AuditEvent) -> None:
    """Insert a well-formed event sealed to ``after``, as someone who knows the algorithm would."""
    with database.transaction(write=True) as session:
        forged = AuditEvent(
            org_id=org_id,
            seq=seq,
            time=after.time,
            actor_type="connection",
            actor=after.actor,
            token_prefix=after.token_prefix,
            request_id="forged",
            client_ip=after.client_ip,
            user_agent=after.user_agent,
            operation="user.read",
            outcome="success",
            status=200,
            prev_hash=after.hash,
        )
        forged.hash = event_hash(canonical_fields(forged))
        session.add(forged)


def _stored(database: Database, org_id: int, seq: int) -> AuditEvent:
    with database.transaction(write=False) as session:
        return session.scalars(
            select(AuditEvent).where(AuditEvent.org_id == org_id, AuditEvent.seq == seq)
        ).one()


def test_an_event_appended_behind_the_servers_back_is_named(
    api: Api, database: Database, events: Any
) -> None:
    code, result = verify(database, api.tenant.slug)
    last = result["last_seq"] + 1  # the verification's own event (audit.verify)
    _forge(database, api.tenant.org_id, last + 1, _stored(database, api.tenant.org_id, last))
    code, result = verify(database, api.tenant.slug)
    assert code == 1
    assert result["broken"]["seq"] == last + 1, result
    assert "beyond the chain head" in result["broken"]["reason"]


def test_an_event_inserted_in_the_middle_is_caught_where_it_joins(
    api: Api, database: Database, events: Any
) -> None:
    org_id = api.tenant.org_id
    after = _stored(database, org_id, 3)
    # make room: renumber 4.. one up, highest first (the (org, seq) index is unique)
    with database.engine.begin() as connection:
        stored = connection.execute(
            text("SELECT seq FROM audit_events WHERE org_id = :o AND seq > 3 ORDER BY seq DESC"),
            {"o": org_id},
        ).scalars()
        for seq in list(stored):
            connection.execute(
                text("UPDATE audit_events SET seq = seq + 1 WHERE org_id = :o AND seq = :s"),
                {"o": org_id, "s": seq},
            )
    _forge(database, org_id, 4, after)
    code, result = verify(database, api.tenant.slug)
    assert code == 1
    assert result["broken"]["seq"] == 5  # the forged 4 fits; the old 4, now 5, does not


def test_a_kept_last_hash_catches_a_rewrite_the_chain_alone_cannot(
    api: Api, auditor: Auditor, database: Database, events: Any
) -> None:
    """The chain is not signed with a key outside the database (README): someone who can write
    to it and recomputes every later hash and the head passes ``verify``. What catches that is
    the last hash an auditor kept from an earlier ``verify``: that event no longer has it."""
    org_id = api.tenant.org_id
    code, before = verify(database, api.tenant.slug)
    assert code == 0
    kept_seq, kept_hash = before["last_seq"], before["last_hash"]
    assert kept_hash == _stored(database, org_id, kept_seq).hash
    # rewrite event 2 (a create becomes a refusal) and reseal everything after it
    with database.transaction(write=True) as session:
        stored = list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.org_id == org_id).order_by(AuditEvent.seq)
            )
        )
        stored[1].status, stored[1].outcome = 409, "refused"
        for previous, event in itertools.pairwise(stored):
            if event.seq > 2:
                event.prev_hash = previous.hash
            event.hash = event_hash(canonical_fields(event))
    _execute(
        database,
        "UPDATE audit_chains SET last_hash = :h WHERE org_id = :o",
        h=stored[-1].hash,
        o=org_id,
    )
    code, _ = verify(database, api.tenant.slug)
    assert code == 0  # the limit of an unkeyed chain
    shown = [e for e in auditor.events() if e["seq"] == kept_seq]
    assert shown[0]["hash"] != kept_hash  # the kept hash shows the rewrite
    # ... and verify checks it when given: the auditor's one command
    anchor = f"{kept_seq}:{kept_hash}"
    anchored = run_cli(
        database, "audit", "verify", "--org", api.tenant.slug, "--anchor", anchor, "--json"
    )
    assert anchored.exit_code == 1
    result = json.loads(anchored.stdout)
    assert result["broken"]["seq"] == kept_seq
    assert "not the one kept" in result["broken"]["reason"]


def test_an_anchor_that_still_holds_verifies_and_a_malformed_one_is_refused(
    api: Api, database: Database, events: Any
) -> None:
    _, result = verify(database, api.tenant.slug)
    anchor = f"{result['last_seq']}:{result['last_hash']}"
    held = run_cli(database, "audit", "verify", "--org", api.tenant.slug, "--anchor", anchor)
    assert held.exit_code == 0, held.output
    assert f"event {result['last_seq']} still has the kept hash" in held.stdout
    as_json = run_cli(
        database, "audit", "verify", "--org", api.tenant.slug, "--anchor", anchor, "--json"
    )
    assert json.loads(as_json.stdout)["anchor_seq"] == result["last_seq"]
    beyond = run_cli(
        database, "audit", "verify", "--org", api.tenant.slug, "--anchor", f"99999:{'0' * 64}"
    )
    assert beyond.exit_code == 1
    assert "event 99999 is not in the log" in beyond.stdout
    for wrong in ("5", "x:abc", f"5:{'z' * 64}"):
        refused = run_cli(database, "audit", "verify", "--org", api.tenant.slug, "--anchor", wrong)
        assert refused.exit_code == 2, wrong
        assert "SEQ:HASH" in refused.output


def test_an_anchor_at_a_prune_s_cut_is_checked_and_one_before_it_cannot_be(
    api: Api, database: Database, events: Any
) -> None:
    third = _stored(database, api.tenant.org_id, 3)
    assert _execute(
        database,
        "UPDATE audit_events SET time = :t WHERE org_id = :o AND seq <= 3",
        t=datetime(2020, 1, 1),
        o=api.tenant.org_id,
    )
    pruned = run_cli(
        database, "audit", "prune", "--org", api.tenant.slug, "--before", "2021-01-01", "--unsigned"
    )
    assert pruned.exit_code == 0, pruned.output
    at_cut = run_cli(
        database, "audit", "verify", "--org", api.tenant.slug, "--anchor", f"3:{third.hash}"
    )
    assert at_cut.exit_code == 0, at_cut.output
    before_cut = run_cli(
        database, "audit", "verify", "--org", api.tenant.slug, "--anchor", f"2:{'a' * 64}"
    )
    assert before_cut.exit_code == 1
    assert "pruned" in before_cut.stdout


# SQLite's read transaction is one snapshot already (WAL), and its writer cannot start inside
# the reader's statement hook of the same thread; the race is PostgreSQL's
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_events_appended_while_a_verify_reads_are_no_break(
    api: Api, database: Database, events: Any
) -> None:
    """A verify on a live server reads the chain head, then the events; an event appended in
    between (another request's, committed meanwhile) must not read as "added outside the log".
    On PostgreSQL each statement of a READ COMMITTED transaction saw the newer events."""
    org_id = api.tenant.org_id
    appended: list[int] = []

    def another_request_meanwhile(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if appended or "FROM audit_chains" not in statement or "FOR UPDATE" in statement:
            return
        with database.transaction(write=True) as session:
            appended.append(append(session, EventDraft("user.read", org_id=org_id)).seq)

    event.listen(database.engine, "after_cursor_execute", another_request_meanwhile)
    try:
        result = audit_log.verify_chain(database, org_id)
    finally:
        event.remove(database.engine, "after_cursor_execute", another_request_meanwhile)
    assert appended, "the head was not read"
    assert result.broken is None, result.broken
    assert result.last_seq == appended[0] - 1  # the log as it stood when the verify began
    assert audit_log.verify_chain(database, org_id).last_seq == appended[0]
