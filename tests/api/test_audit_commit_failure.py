"""A write whose COMMIT fails is still in the log, as a failure (and the change is not)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text

from scim_server.store.db import Database
from tests.conftest import USER_SCHEMA, Api


def test_a_failed_commit_is_recorded_as_a_failure(api: Api, database: Database) -> None:
    armed = {"on": True}

    def refuse_commit(session: Any) -> None:
        if armed["on"]:
            armed["on"] = False  # only the user's write; the failure event must commit
            raise RuntimeError("commit refused")

    factory = database._sessions  # the real session factory: a real commit is refused
    event.listen(factory, "before_commit", refuse_commit)
    try:
        response = api.post("/Users", {"schemas": [USER_SCHEMA], "userName": "late@acme.com"})
    finally:
        event.remove(factory, "before_commit", refuse_commit)
    assert response.status_code == 500
    request_id = response.headers["X-Request-Id"]
    with database.engine.connect() as connection:
        users = connection.execute(
            text("SELECT count(*) FROM users WHERE org_id = :o"), {"o": api.tenant.org_id}
        ).scalar()
        events = connection.execute(
            text(
                "SELECT operation, outcome, status, changes FROM audit_events WHERE request_id = :r"
            ),
            {"r": request_id},
        ).all()
    assert users == 0
    # SQLite's JSON column reads a stored JSON null back as the text "null"
    assert [(e.operation, e.outcome, e.status, e.changes or None) for e in events] in (
        [("user.create", "failed", 500, None)],
        [("user.create", "failed", 500, "null")],
    )
    assert [(e.operation, e.outcome, e.status) for e in events] == [("user.create", "failed", 500)]
