"""The invitation outbox: a mailer takes each message once, with a link that works."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner
from sqlalchemy import Row, text

from scim_server.cli import main
from scim_server.services import lifecycle, tokens
from scim_server.store.db import Database
from tests.conftest import Api


def _drain(database: Database, slug: str, **env: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(
        main,
        ["invitation", "drain", "--org", slug],
        env={"SCIM_DATABASE_URL": database.url, **env},
    )
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.strip()]


def _stored(database: Database, org_id: int) -> Row[Any]:
    with database.engine.connect() as connection:
        return connection.execute(
            text("SELECT token_hash, sent_at FROM invitations WHERE org_id = :o"), {"o": org_id}
        ).one()


def _all_invitation_rows(database: Database) -> list[str]:
    with database.engine.connect() as connection:
        return [str(tuple(row)) for row in connection.execute(text("SELECT * FROM invitations"))]


def test_drained_messages_carry_a_working_link_once(api: Api, database: Database) -> None:
    user = api.create_user(
        "newcomer@acme.com", emails=[{"value": "newcomer@mail.acme.com", "primary": True}]
    )
    # waiting in the outbox, the invitation has no token yet: nothing to steal from the row
    assert _stored(database, api.tenant.org_id).token_hash is None
    url = "https://app.example.com/invite/{token}"
    messages = _drain(database, api.tenant.slug, SCIM_INVITATION_URL=url)
    assert [(m["userId"], m["to"], m["token"]) for m in messages] == [
        (user["id"], "newcomer@mail.acme.com", None)
    ]
    link = str(messages[0]["link"])
    assert link.startswith("https://app.example.com/invite/inv_")
    token = link.rsplit("/", 1)[1]

    # taken once; the database keeps the token's hash, never the token
    assert _drain(database, api.tenant.slug, SCIM_INVITATION_URL=url) == []
    stored = _stored(database, api.tenant.org_id)
    assert stored.token_hash == tokens.hash_token(token)
    assert stored.sent_at is not None
    assert not any(token in row for row in _all_invitation_rows(database))

    # the link works: the host product's sign-up makes the user active
    with database.transaction(write=True) as session:
        assert lifecycle.accept_invitation(session, token).id == user["id"]

    # the send is audited without the token
    with database.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT operation, CAST(changes AS TEXT) FROM audit_events WHERE org_id = :o"),
            {"o": api.tenant.org_id},
        ).all()
    assert any(operation == "invitation.send" for operation, _ in rows)
    assert all(token not in (changes or "") for _, changes in rows)


def test_a_message_goes_only_to_a_valid_address(api: Api, database: Database) -> None:
    """Without a domain policy any text is accepted as an email value, but the mailer is only
    ever given one valid address: the first valid email, else the userName, else none."""
    first = api.create_user(
        "first@acme.com",
        emails=[
            {"value": "e@evil.com,x@acme.com", "primary": True},
            {"value": "first@mail.acme.com"},
        ],
    )
    by_name = api.create_user("by.name@acme.com", emails=[{"value": "Eve <e@evil.com>"}])
    nowhere = api.create_user("e@evil.com;x@acme.com")
    messages = {m["userId"]: m["to"] for m in _drain(database, api.tenant.slug)}
    assert messages == {
        first["id"]: "first@mail.acme.com",
        by_name["id"]: "by.name@acme.com",
        nowhere["id"]: None,
    }


def test_cancelled_and_resent_invitations(api: Api, database: Database) -> None:
    api.create_user("first@acme.com")
    runner = CliRunner()
    env = {"SCIM_DATABASE_URL": database.url}
    resent = runner.invoke(
        main, ["invitation", "resend", "--org", api.tenant.slug, "first@acme.com"], env=env
    )
    assert resent.exit_code == 0, resent.output
    # only the newest invitation is waiting, and without a template the token itself is handed over
    messages = _drain(database, api.tenant.slug)
    assert len(messages) == 1
    assert str(messages[0]["token"]).startswith("inv_")
    assert messages[0]["link"] is None
    api.create_user("second@acme.com")
    cancelled = runner.invoke(
        main, ["invitation", "cancel", "--org", api.tenant.slug, "second@acme.com"], env=env
    )
    assert cancelled.exit_code == 0, cancelled.output
    assert _drain(database, api.tenant.slug) == []


def test_an_expired_message_is_never_sent_and_limit_is_checked(
    api: Api, database: Database
) -> None:
    api.create_user("late@acme.com")
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE invitations SET expires_at = created_at - INTERVAL '1 day' "
                "WHERE org_id = :o"
            )
            if not database.is_sqlite
            else text(
                "UPDATE invitations SET expires_at = '2000-01-01 00:00:00' WHERE org_id = :o"
            ),
            {"o": api.tenant.org_id},
        )
    assert _drain(database, api.tenant.slug) == []
    assert _stored(database, api.tenant.org_id).token_hash is None  # no link was ever made
    refused = CliRunner().invoke(
        main, ["invitation", "drain", "--limit", "0"], env={"SCIM_DATABASE_URL": database.url}
    )
    assert refused.exit_code == 2
    assert "--limit" in refused.output
