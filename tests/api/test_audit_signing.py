"""Signed checkpoints (DESIGN §6: "a signed checkpoint"): a key the database never holds
vouches for the log up to a checkpoint, so a rewrite resealed by someone who can write to the
database, which the hash chain alone cannot show, fails ``audit verify``."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from scim_server.app import create_app
from scim_server.audit.chain import canonical_fields, event_hash
from scim_server.audit.signing import SigningKey, signed_changes
from scim_server.config import ConfigError, Settings, audit_signing_keys
from scim_server.store.db import Database
from scim_server.store.models import AuditEvent
from tests.api.audit_support import (
    NEW_SIGNING_KEY,
    SIGNING_KEY,
    Auditor,
    all_event_rows_as_text,
    auditor_for,
    prune_log,
    run_cli,
)
from tests.conftest import Api, make_tenant


@pytest.fixture
def auditor(app: Flask, database: Database, api: Api) -> Auditor:
    return auditor_for(app, database, api.tenant.slug)


@pytest.fixture
def history(api: Api) -> None:
    """Four events: three creates and a delete (seq 1..4)."""
    users = [api.create_user(f"signed{n}@example.com") for n in range(3)]
    assert api.delete(f"/Users/{users[2]['id']}").status_code == 204


def _checkpoint(database: Database, slug: str, key: str = SIGNING_KEY) -> dict[str, Any]:
    result = run_cli(database, "audit", "checkpoint", "--org", slug, "--json", signing_key=key)
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def _verify(
    database: Database, slug: str, key: str | None, *options: str
) -> tuple[int, dict[str, Any]]:
    result = run_cli(
        database, "audit", "verify", "--org", slug, *options, "--json", signing_key=key
    )
    return result.exit_code, json.loads(result.stdout)


def _rewrite_and_reseal(database: Database, org_id: int, seq: int, **fields: Any) -> None:
    """What someone with write access to the database and the algorithm can do: change event
    ``seq`` and recompute every later hash and the chain head."""
    with database.transaction(write=True) as session:
        stored = list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.org_id == org_id).order_by(AuditEvent.seq)
            )
        )
        for name, value in fields.items():
            setattr(next(e for e in stored if e.seq == seq), name, value)
        for previous, event in itertools.pairwise([None, *stored]):
            if previous is not None and event.seq > seq:
                event.prev_hash = previous.hash
            event.hash = event_hash(canonical_fields(event))
    with database.engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_chains SET last_hash = :h WHERE org_id = :o"),
            {"h": stored[-1].hash, "o": org_id},
        )


def test_a_rewrite_resealed_before_a_checkpoint_fails_verify_with_the_key(
    api: Api, database: Database, history: None
) -> None:
    summary = _checkpoint(database, api.tenant.slug)
    assert summary["org"] == api.tenant.slug
    checkpoint = summary["seq"]
    code, result = _verify(database, api.tenant.slug, SIGNING_KEY)
    assert (code, result["ok"], result["signatures_checked"]) == (0, True, True)
    assert result["signed_checkpoint"]["seq"] == checkpoint
    assert result["signed_checkpoint"]["key_id"] == summary["key_id"]

    # a create becomes a refusal, and every later hash and the head are recomputed
    _rewrite_and_reseal(database, api.tenant.org_id, 2, status=409, outcome="refused")
    code, result = _verify(database, api.tenant.slug, None)
    assert (code, result["ok"]) == (0, True)  # the hash chain alone cannot show it
    assert result["signatures_checked"] is False
    code, result = _verify(database, api.tenant.slug, SIGNING_KEY)
    assert code == 1
    assert result["broken"]["seq"] == checkpoint
    assert "signature does not hold" in result["broken"]["reason"]


def test_events_after_the_last_checkpoint_are_said_to_rest_on_the_chain_alone(
    api: Api, database: Database, history: None
) -> None:
    checkpoint = _checkpoint(database, api.tenant.slug)["seq"]
    api.create_user("later@example.com")
    shown = run_cli(database, "audit", "verify", "--org", api.tenant.slug, signing_key=SIGNING_KEY)
    assert shown.exit_code == 0, shown.output
    # the create: one event (the verify's own event is recorded after it has read)
    assert f"signed checkpoint at event {checkpoint}" in shown.stdout
    assert "1 event after it rest on the hash chain alone" in shown.stdout

    # a rewrite after the checkpoint is beyond what it vouches for: only the chain shows it
    # (here it is not resealed)
    with database.engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_events SET detail = 'x' WHERE org_id = :o AND seq = :s"),
            {"o": api.tenant.org_id, "s": checkpoint + 1},
        )
    code, result = _verify(database, api.tenant.slug, SIGNING_KEY)
    assert (code, result["broken"]["seq"]) == (1, checkpoint + 1)


def test_without_the_key_verify_says_what_it_cannot_vouch_for(
    api: Api, database: Database, history: None
) -> None:
    checkpoint = _checkpoint(database, api.tenant.slug)["seq"]
    shown = run_cli(database, "audit", "verify", "--org", api.tenant.slug)
    assert shown.exit_code == 0, shown.output
    assert "signatures not checked (SCIM_AUDIT_SIGNING_KEY is not set)" in shown.stdout
    code, result = _verify(database, api.tenant.slug, None)
    assert (code, result["signed_checkpoint"]) == (0, None)
    assert result["unchecked_checkpoints"] == [checkpoint]


def test_a_checkpoint_signed_with_another_key_vouches_for_nothing(
    api: Api, database: Database, history: None
) -> None:
    """Someone who rewrites the log can sign a checkpoint with a key of their own; it is not
    one the auditor gave, so it is named and does not count."""
    _checkpoint(database, api.tenant.slug, key="f" * 64)
    code, result = _verify(database, api.tenant.slug, SIGNING_KEY)
    assert (code, result["ok"], result["signed_checkpoint"]) == (0, True, None)
    assert len(result["unchecked_checkpoints"]) == 1
    shown = run_cli(database, "audit", "verify", "--org", api.tenant.slug, signing_key=SIGNING_KEY)
    assert "no checkpoint signed with a given key" in shown.stdout


def test_a_forged_or_moved_signature_is_a_break(
    api: Api, database: Database, history: None
) -> None:
    first = _checkpoint(database, api.tenant.slug)["seq"]
    api.create_user("between@example.com")
    second = _checkpoint(database, api.tenant.slug)["seq"]
    with database.engine.begin() as connection:
        signatures = dict(
            connection.execute(
                text("SELECT seq, changes FROM audit_events WHERE org_id = :o AND seq IN (:a, :b)"),
                {"o": api.tenant.org_id, "a": first, "b": second},
            ).all()
        )

    def changes_of(seq: int) -> dict[str, Any]:
        value = signatures[seq]
        loaded: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
        return loaded

    # the first checkpoint's signature copied onto the second: it signed another place
    _rewrite_and_reseal(database, api.tenant.org_id, second, changes=changes_of(first))
    code, result = _verify(database, api.tenant.slug, SIGNING_KEY)
    assert (code, result["broken"]["seq"]) == (1, second)
    # a signature made up under the right key id
    forged = {**changes_of(second), "signature": "0" * 64}
    _rewrite_and_reseal(database, api.tenant.org_id, second, changes=forged)
    code, result = _verify(database, api.tenant.slug, SIGNING_KEY)
    assert (code, result["broken"]["seq"]) == (1, second)


def test_keys_rotate_the_first_signs_and_every_one_given_verifies(
    api: Api, database: Database, history: None
) -> None:
    old = _checkpoint(database, api.tenant.slug, SIGNING_KEY)
    both = f"{NEW_SIGNING_KEY}, {SIGNING_KEY}"  # the new key first: it signs from now on
    new = _checkpoint(database, api.tenant.slug, both)
    assert new["key_id"] != old["key_id"]
    code, result = _verify(database, api.tenant.slug, both)
    assert (code, result["unchecked_checkpoints"]) == (0, [])
    assert result["signed_checkpoint"] == {**result["signed_checkpoint"], "seq": new["seq"]}
    assert result["signed_checkpoint"]["key_id"] == new["key_id"]
    # an auditor given only the new key still checks the newest checkpoint
    code, result = _verify(database, api.tenant.slug, NEW_SIGNING_KEY)
    assert (code, result["signed_checkpoint"]["seq"]) == (0, new["seq"])
    assert result["unchecked_checkpoints"] == [old["seq"]]


def test_a_signed_prune_s_cut_cannot_be_moved_by_a_database_writer(
    api: Api, auditor: Auditor, database: Database, history: None
) -> None:
    """Pruning deletes evidence: the checkpoint it leaves says where the log was cut. Signed,
    a writer who deletes more events and moves the cut to match is caught."""
    summary = prune_log(database, api.tenant.slug, auditor.events()[2]["time"])
    assert (summary["cut_seq"], summary["key_id"]) == (2, SigningKey.from_text(SIGNING_KEY).key_id)
    code, result = _verify(database, api.tenant.slug, SIGNING_KEY)
    assert (code, result["signed_checkpoint"]["seq"]) == (0, summary["checkpoint_seq"])

    # delete event 3 as well and record the cut at 3, resealing the checkpoint
    with database.engine.begin() as connection:
        third = connection.execute(
            text("SELECT hash FROM audit_events WHERE org_id = :o AND seq = 3"),
            {"o": api.tenant.org_id},
        ).scalar_one()
        connection.execute(
            text("DELETE FROM audit_events WHERE org_id = :o AND seq = 3"),
            {"o": api.tenant.org_id},
        )
    [checkpoint] = [e for e in auditor.events() if e["operation"] == "audit.prune"]
    moved = {**checkpoint["changes"], "cut": {"seq": 3, "hash": third}}
    _rewrite_and_reseal(database, api.tenant.org_id, checkpoint["seq"], changes=moved)
    code, result = _verify(database, api.tenant.slug, None)
    assert code == 0  # the chain alone: the cut fits the first remaining event
    code, result = _verify(database, api.tenant.slug, SIGNING_KEY)
    assert (code, result["broken"]["seq"]) == (1, checkpoint["seq"])


def test_signing_and_pruning_without_a_key_are_refused_and_write_nothing(
    api: Api, auditor: Auditor, database: Database, history: None
) -> None:
    before = [e["seq"] for e in auditor.events()]
    signed = run_cli(database, "audit", "checkpoint", "--org", api.tenant.slug)
    assert signed.exit_code == 2
    assert "SCIM_AUDIT_SIGNING_KEY" in signed.output
    pruned = run_cli(database, "audit", "prune", "--org", api.tenant.slug, "--before", "2999-01-01")
    assert pruned.exit_code == 2
    assert "--unsigned" in pruned.output
    after = auditor.events()
    assert [e["seq"] for e in after] == [*before, before[-1] + 1]  # the first listing's event
    assert not any(e["operation"] in ("audit.checkpoint", "audit.prune") for e in after)

    # --unsigned prunes, and says the checkpoint is not signed
    unsigned = run_cli(
        database,
        "audit",
        "prune",
        "--org",
        api.tenant.slug,
        "--before",
        "2999-01-01",
        "--unsigned",
    )
    assert unsigned.exit_code == 0, unsigned.output
    assert "not signed" in unsigned.stdout
    code, result = _verify(database, api.tenant.slug, None)
    assert code == 0  # the chain alone holds
    # with the key: nothing vouches that the events before the log's start were pruned and not
    # deleted, until a signed checkpoint follows the unsigned prune
    code, result = _verify(database, api.tenant.slug, SIGNING_KEY)
    assert (code, result["broken"]["seq"]) == (1, result["first_seq"])
    assert "neither signed with a given key nor followed" in result["broken"]["reason"]
    _checkpoint(database, api.tenant.slug)
    code, result = _verify(database, api.tenant.slug, SIGNING_KEY)
    assert (code, result["unchecked_checkpoints"]) == (0, [result["first_seq"]])


def test_checkpoint_all_signs_every_log_and_one_that_fails_stops_no_other(
    app: Flask, database: Database
) -> None:
    signed_ok, damaged = (make_tenant(database, "every") for _ in range(2))
    # an event written past the chain head, outside the log: the next append collides with it
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_events (org_id, seq, time, actor_type, operation, outcome, "
                "prev_hash, hash) VALUES (:o, 1, CURRENT_TIMESTAMP, 'cli', 'x', 'success', "
                ":h, :h)"
            ),
            {"o": damaged.org_id, "h": "0" * 64},
        )
    result = run_cli(database, "audit", "checkpoint", "--all", "--json", signing_key=SIGNING_KEY)
    assert result.exit_code == 1, result.output  # one log could not be signed
    summary = json.loads(result.stdout)
    assert damaged.slug in summary["failed"]
    assert f"could not sign the audit log of {damaged.slug}" in result.stderr
    signed = {entry["org"]: entry["seq"] for entry in summary["signed"]}
    assert None in signed  # the system log
    assert signed_ok.slug in signed
    code, verified = _verify(database, signed_ok.slug, SIGNING_KEY)
    assert (code, verified["signed_checkpoint"]["seq"]) == (0, signed[signed_ok.slug])
    system = run_cli(database, "audit", "verify", "--system", "--json", signing_key=SIGNING_KEY)
    assert json.loads(system.stdout)["signed_checkpoint"]["seq"] == signed[None]
    both = run_cli(database, "audit", "checkpoint", "--all", "--system", signing_key=SIGNING_KEY)
    assert both.exit_code == 2


def test_the_key_reaches_no_event_output_or_error(
    api: Api, database: Database, history: None
) -> None:
    outputs = [
        run_cli(database, "audit", "checkpoint", "--org", api.tenant.slug, signing_key=SIGNING_KEY),
        run_cli(database, "audit", "verify", "--org", api.tenant.slug, signing_key=SIGNING_KEY),
        run_cli(database, "audit", "export", "--org", api.tenant.slug, signing_key=SIGNING_KEY),
    ]
    assert all(result.exit_code == 0 for result in outputs)
    assert not any(SIGNING_KEY in result.output for result in outputs)
    assert not any(SIGNING_KEY in row for row in all_event_rows_as_text(database))
    short = "s3cr3t-but-short"
    refused = run_cli(database, "audit", "verify", "--org", api.tenant.slug, signing_key=short)
    assert refused.exit_code == 2
    assert "at least 32 characters" in refused.output
    assert short not in refused.output
    with pytest.raises(ConfigError) as error:
        audit_signing_keys(Settings.from_env({"SCIM_AUDIT_SIGNING_KEY": f"{SIGNING_KEY},{short}"}))
    assert short not in str(error.value)
    assert SIGNING_KEY not in repr(Settings.from_env({"SCIM_AUDIT_SIGNING_KEY": SIGNING_KEY}))
    # the server never uses the key: a bad one in its environment does not stop it
    served = create_app(
        Settings.from_env({"SCIM_DATABASE_URL": database.url, "SCIM_AUDIT_SIGNING_KEY": short})
    )
    assert served.test_client().get("/healthz").status_code == 200
    # a key file's trailing newline is not part of the key
    stripped = run_cli(
        database, "audit", "checkpoint", "--org", api.tenant.slug, signing_key=f"{SIGNING_KEY}\n"
    )
    assert SigningKey.from_text(SIGNING_KEY).key_id in stripped.stdout


def test_a_checkpoint_in_an_export_checks_offline_with_the_documented_recipe(
    api: Api, database: Database, history: None
) -> None:
    """README, "Checking an export offline": an auditor holding the key checks a checkpoint's
    signature from the export alone. Written from the README, not from the server's code."""
    _checkpoint(database, api.tenant.slug)
    exported = run_cli(database, "audit", "export", "--org", api.tenant.slug, "--format", "jsonl")
    assert exported.exit_code == 0, exported.output
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    [checkpoint] = [e for e in events if e["operation"] == "audit.checkpoint"]

    def signature_holds(key: str, event: dict[str, Any]) -> bool:
        changes = {k: v for k, v in event["changes"].items() if k not in ("keyId", "signature")}
        signed = {
            "purpose": "scim-server audit checkpoint v1",
            "org_id": event["orgId"],
            "seq": event["seq"],
            "prev_hash": event["prevHash"],
            "changes": changes,
        }
        text = json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        mac = hmac.new(key.strip().encode(), text.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(mac.encode(), event["changes"]["signature"].encode())

    assert signature_holds(SIGNING_KEY, checkpoint)
    assert signature_holds(f"{SIGNING_KEY}\n", checkpoint)  # as read from a key file
    assert not signature_holds(NEW_SIGNING_KEY, checkpoint)
    assert not signature_holds(SIGNING_KEY, {**checkpoint, "prevHash": events[0]["hash"]})


def _delete_events(database: Database, org_id: int, seqs: list[int]) -> None:
    with database.engine.begin() as connection:
        for seq in seqs:
            connection.execute(
                text("DELETE FROM audit_events WHERE org_id = :o AND seq = :s"),
                {"o": org_id, "s": seq},
            )


def _append_forged(database: Database, org_id: int, operation: str, changes: Any) -> int:
    """Append an event at the end of the log as a database writer would: well-formed, sealed
    to the last event, the head moved on; not signed, for want of the key."""
    with database.transaction(write=True) as session:
        last = session.scalars(
            select(AuditEvent).where(AuditEvent.org_id == org_id).order_by(AuditEvent.seq.desc())
        ).first()
        assert last is not None
        forged = AuditEvent(
            org_id=org_id,
            seq=last.seq + 1,
            time=last.time,
            actor_type="cli",
            actor="root",
            operation=operation,
            outcome="success",
            resource_type="AuditLog",
            changes=changes,
            prev_hash=last.hash,
        )
        forged.hash = event_hash(canonical_fields(forged))
        session.add(forged)
    with database.engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_chains SET last_seq = :s, last_hash = :h WHERE org_id = :o"),
            {"s": forged.seq, "h": forged.hash, "o": org_id},
        )
    return forged.seq


def test_a_prefix_deleted_behind_a_made_up_prune_record_is_a_break(
    api: Api, auditor: Auditor, database: Database, history: None
) -> None:
    """Deleting the oldest events before a signed checkpoint and appending an unsigned
    "prune" record that names the new start: the chain holds, but no signature vouches for the
    record, and the signed checkpoint can no longer say nothing before it was removed."""
    events = auditor.events()
    checkpoint = _checkpoint(database, api.tenant.slug)["seq"]
    _delete_events(database, api.tenant.org_id, [1, 2, 3])
    third = next(e for e in events if e["seq"] == 3)
    forged = _append_forged(
        database,
        api.tenant.org_id,
        "audit.prune",
        {"cut": {"seq": 3, "hash": third["hash"]}, "pruned": 3, "before": third["time"]},
    )
    code, result = _verify(database, api.tenant.slug, None)
    assert (code, result["first_seq"]) == (0, 4)  # the chain alone: a prune like any other
    code, result = _verify(database, api.tenant.slug, SIGNING_KEY)
    assert (code, result["broken"]["seq"]) == (1, forged)
    reason = result["broken"]["reason"]
    assert f"when the last valid checkpoint (event {checkpoint})" in reason
    assert "started at event 1" in reason
    assert f"by the unsigned prune record at event {forged}" in reason
    assert checkpoint < forged


def test_a_prune_record_planted_before_a_checkpoint_vouches_for_no_later_deletion(
    api: Api, auditor: Auditor, database: Database, history: None
) -> None:
    """The daily job signs whatever the log holds, records a database writer appended
    included: a made-up prune record signed over that way must not let the writer delete the
    prefix it names afterwards. Each checkpoint signs where the log started."""
    third = next(e for e in auditor.events() if e["seq"] == 3)
    planted = _append_forged(
        database,
        api.tenant.org_id,
        "audit.prune",
        {"cut": {"seq": 3, "hash": third["hash"]}, "pruned": 3, "before": third["time"]},
    )
    checkpoint = _checkpoint(database, api.tenant.slug)["seq"]
    _delete_events(database, api.tenant.org_id, [1, 2, 3])
    assert _verify(database, api.tenant.slug, None)[0] == 0  # the chain alone
    code, result = _verify(database, api.tenant.slug, SIGNING_KEY)
    assert (code, result["broken"]["seq"]) == (1, planted)
    assert f"last valid checkpoint (event {checkpoint})" in result["broken"]["reason"]


def test_a_signed_prune_s_cut_cannot_be_moved_by_deleting_more_and_recording_it_again(
    api: Api, auditor: Auditor, database: Database, history: None
) -> None:
    events = auditor.events()
    assert prune_log(database, api.tenant.slug, events[2]["time"])["cut_seq"] == 2
    _delete_events(database, api.tenant.org_id, [3])
    _append_forged(
        database,
        api.tenant.org_id,
        "audit.prune",
        {"cut": {"seq": 3, "hash": events[2]["hash"]}, "pruned": 1, "before": events[3]["time"]},
    )
    assert _verify(database, api.tenant.slug, None)[0] == 0
    code, result = _verify(database, api.tenant.slug, SIGNING_KEY)
    assert code == 1, result


def _resign(database: Database, org_id: int, seq: int, signed_at: str) -> None:
    """What the holder of the key could do (the tests hold it): sign a checkpoint again with
    another ``signedAt``."""
    with database.transaction(write=True) as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.org_id == org_id, AuditEvent.seq == seq)
        ).one()
        changes = {**event.changes, "signedAt": signed_at}
        prev_hash = event.prev_hash
    key = SigningKey.from_text(SIGNING_KEY)
    _rewrite_and_reseal(
        database, org_id, seq, changes=signed_changes(key, org_id, seq, prev_hash, changes)
    )


def test_max_age_fails_a_log_whose_last_valid_signature_is_too_old(
    api: Api, database: Database, history: None
) -> None:
    """A database writer can always cut a log at its end, newest checkpoints included, and
    the chain still holds: what shows it is that the last signature is older than the daily
    job would leave it. The time that counts is the signed one, not the event's."""
    checkpoint = _checkpoint(database, api.tenant.slug)["seq"]
    three_days_ago = (datetime.now(UTC) - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    _resign(database, api.tenant.org_id, checkpoint, three_days_ago)

    def verify_within(age: str) -> tuple[int, dict[str, Any]]:
        return _verify(database, api.tenant.slug, SIGNING_KEY, "--max-age", age)

    code, result = verify_within("4d")
    assert (code, result["stale"], result["signed_checkpoint"]["time"]) == (0, None, three_days_ago)
    code, result = verify_within("2d")
    assert code == 1
    assert f"event {checkpoint}" in result["stale"]
    shown = run_cli(
        database,
        "audit",
        "verify",
        "--org",
        api.tenant.slug,
        "--max-age",
        "2d",
        signing_key=SIGNING_KEY,
    )
    assert (shown.exit_code, "is STALE" in shown.stdout) == (1, True)

    # the event's own time is not what is vouched for: moving it changes nothing
    _rewrite_and_reseal(database, api.tenant.org_id, checkpoint, time=datetime.now(UTC))
    code, result = verify_within("2d")
    assert (code, result["signed_checkpoint"]["time"]) == (1, three_days_ago)
    # a fresh checkpoint is vouched for now
    _checkpoint(database, api.tenant.slug)
    assert verify_within("2d")[0] == 0
    # without a key there is nothing to check the age of
    refused = run_cli(database, "audit", "verify", "--org", api.tenant.slug, "--max-age", "2d")
    assert refused.exit_code == 2
    assert "SCIM_AUDIT_SIGNING_KEY" in refused.output


def test_a_log_with_no_signed_checkpoint_is_stale_and_odd_signature_fields_do_not_crash(
    api: Api, database: Database, history: None
) -> None:
    odd = _append_forged(
        database, api.tenant.org_id, "audit.checkpoint", {"keyId": "é", "signature": "ü"}
    )
    code, verdict = _verify(database, api.tenant.slug, SIGNING_KEY, "--max-age", "1d")
    assert code == 1, verdict
    assert verdict["ok"] is True
    assert verdict["unchecked_checkpoints"] == [odd]
    assert verdict["stale"] == "no checkpoint signed with a given key holds"
    # a signature that is not hex under a key that is given: a break, not a crash
    key_id = SigningKey.from_text(SIGNING_KEY).key_id
    _rewrite_and_reseal(
        database, api.tenant.org_id, odd, changes={"keyId": key_id, "signature": "ü"}
    )
    code, verdict = _verify(database, api.tenant.slug, SIGNING_KEY)
    assert (code, verdict["broken"]["seq"]) == (1, odd)


def test_a_signed_time_in_the_future_or_without_a_zone_is_stale_not_fresh_forever(
    api: Api, database: Database, history: None
) -> None:
    checkpoint = _checkpoint(database, api.tenant.slug)["seq"]
    for signed_at, reason in (
        ("2031-01-01T00:00:00.000000Z", "in the future"),
        ("2026-01-01T00:00:00.000000", "more than 2d ago"),
    ):
        _resign(database, api.tenant.org_id, checkpoint, signed_at)
        code, verdict = _verify(database, api.tenant.slug, SIGNING_KEY, "--max-age", "2d")
        assert code == 1, verdict
        assert reason in verdict["stale"]


def test_an_event_that_cannot_be_hashed_is_a_break_not_a_crash(
    api: Api, database: Database, history: None
) -> None:
    """A lone surrogate, which the server never stores (it writes the escape instead), put
    into an event by a database writer. PostgreSQL refuses to store one at all."""
    lone = {"keyId": "k", "signature": "\ud800"}
    text_value = json.dumps(lone)  # ASCII escape: the database decodes it
    value = ":c" if database.is_sqlite else "CAST(:c AS jsonb)"
    update = text(f"UPDATE audit_events SET changes = {value} WHERE org_id = :o AND seq = 2")
    if not database.is_sqlite:
        with pytest.raises(DBAPIError), database.engine.begin() as connection:
            connection.execute(update, {"c": text_value, "o": api.tenant.org_id})
        return
    with database.engine.begin() as connection:
        connection.execute(update, {"c": text_value, "o": api.tenant.org_id})
    code, result = _verify(database, api.tenant.slug, SIGNING_KEY)
    assert (code, result["broken"]["seq"]) == (1, 2)


def test_verify_all_checks_every_log_and_names_those_that_fail(
    app: Flask, database: Database
) -> None:
    """The auditor's daily job: one command over every log, after the daily checkpoint."""
    sound, rewritten, unsigned = (make_tenant(database, "verify-all") for _ in range(3))
    for tenant in (sound, rewritten, unsigned):
        Api(app.test_client(), tenant).create_user(f"before@{tenant.slug}.example.com")
    signed = run_cli(database, "audit", "checkpoint", "--all", signing_key=SIGNING_KEY)
    assert sound.slug in signed.stdout
    # an event before the checkpoint is rewritten in one log; another has a newer checkpoint
    # nobody signed
    _rewrite_and_reseal(database, rewritten.org_id, 1, actor="someone else")
    _append_forged(database, unsigned.org_id, "audit.checkpoint", {"note": "unsigned"})
    result = run_cli(
        database,
        "audit",
        "verify",
        "--all",
        "--max-age",
        "1d",
        "--json",
        signing_key=SIGNING_KEY,
    )
    assert result.exit_code == 1, result.output  # one log at least fails
    verdict = json.loads(result.stdout)
    by_org = {log["org"]: log for log in verdict["logs"]}
    assert None in by_org  # the system log
    assert (by_org[sound.slug]["ok"], by_org[sound.slug]["stale"]) == (True, None)
    assert by_org[unsigned.slug]["ok"] is True  # an unsigned checkpoint is only listed
    assert by_org[unsigned.slug]["unchecked_checkpoints"]
    assert by_org[rewritten.slug]["ok"] is False
    assert rewritten.slug in verdict["failed"]
    assert sound.slug not in verdict["failed"]
    text = run_cli(database, "audit", "verify", "--all", signing_key=SIGNING_KEY)
    assert f"the audit log of {rewritten.slug} is BROKEN" in text.stdout
    assert text.stdout.rstrip().splitlines()[-1].endswith("failed")
    refused = run_cli(database, "audit", "verify", "--all", "--anchor", f"1:{'0' * 64}")
    assert refused.exit_code == 2


def test_a_prune_signed_with_a_key_not_given_is_named_as_such(
    api: Api, auditor: Auditor, database: Database, history: None
) -> None:
    _checkpoint(database, api.tenant.slug, SIGNING_KEY)
    rotated = f"{NEW_SIGNING_KEY},{SIGNING_KEY}"
    summary = prune_log(database, api.tenant.slug, auditor.events()[2]["time"], rotated)
    assert _verify(database, api.tenant.slug, rotated)[0] == 0
    code, result = _verify(database, api.tenant.slug, SIGNING_KEY)  # the old key only
    assert (code, result["broken"]["seq"]) == (1, summary["checkpoint_seq"])
    assert f"signed with key {summary['key_id']}, which was not given" in result["broken"]["reason"]


def test_a_checkpoint_signed_before_log_starts_were_recorded_still_verifies(
    api: Api, database: Database, history: None
) -> None:
    """Checkpoints of the first signing release (never tagged) carry no logStart: they still
    vouch for the events before them, and a prune record after them is still not vouched."""
    checkpoint = _checkpoint(database, api.tenant.slug)["seq"]
    with database.transaction(write=True) as session:
        event = session.scalars(
            select(AuditEvent).where(
                AuditEvent.org_id == api.tenant.org_id, AuditEvent.seq == checkpoint
            )
        ).one()
        content = {k: v for k, v in event.changes.items() if k != "logStart"}
        prev_hash = event.prev_hash
    key = SigningKey.from_text(SIGNING_KEY)
    old_style = signed_changes(key, api.tenant.org_id, checkpoint, prev_hash, content)
    _rewrite_and_reseal(database, api.tenant.org_id, checkpoint, changes=old_style)
    code, result = _verify(database, api.tenant.slug, SIGNING_KEY)
    assert (code, result["signed_checkpoint"]["seq"]) == (0, checkpoint)
    _rewrite_and_reseal(database, api.tenant.org_id, 1, detail="rewritten")
    assert _verify(database, api.tenant.slug, SIGNING_KEY)[0] == 1
