"""Large groups built with bulk SQL: set-up for tests that count what a request against a big
group costs (not the behaviour under test; every measured request goes through HTTP)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, literal, select

from scim_server.store.db import Database
from scim_server.store.models import Group, GroupMember, User
from scim_server.store.types import utcnow
from tests.conftest import Api

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def bulk_users(database: Database, org_id: int, count: int, prefix: str) -> None:
    """``count`` active users ``{prefix}{i}@bulk.example``, inserted with one statement."""
    now = utcnow()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "org_id": org_id,
            "user_name": f"{prefix}{i}@bulk.example",
            "active": True,
            "created_at": now,
            "last_modified": now,
            "version": 1,
            "data": {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": f"{prefix}{i}@bulk.example",
                "active": True,
            },
        }
        for i in range(count)
    ]
    with database.transaction(write=True) as session:
        session.execute(insert(User), rows)


def group_with(
    api: Api, database: Database, name: str, size: int, users_named: str | None = None
) -> dict[str, Any]:
    """A group created through the API with ``size`` members added by one INSERT ... SELECT:
    the first ``size`` users whose userName starts with ``users_named`` (bulk users of their
    own, ``{name}-{i}``, when it is not given). ``some_member`` is the id of one of them."""
    group: dict[str, Any] = api.post(
        "/Groups", {"schemas": [GROUP], "displayName": name}
    ).get_json()
    org_id = api.tenant.org_id
    if users_named is None:
        users_named = f"{name}-"
        bulk_users(database, org_id, size, users_named)
    with database.transaction(write=True) as session:
        group_pk = session.scalar(select(Group.pk).where(Group.id == group["id"]))
        members = (
            select(literal(group_pk), User.pk, User.org_id, User.id)
            .where(User.org_id == org_id, User.user_name.startswith(users_named, autoescape=True))
            .order_by(User.pk)
            .limit(size)
        )
        session.execute(
            insert(GroupMember).from_select(["group_pk", "user_pk", "org_id", "user_id"], members)
        )
        group["some_member"] = session.scalar(
            select(GroupMember.user_id)
            .where(GroupMember.group_pk == group_pk)
            .order_by(GroupMember.user_pk)
            .limit(1)
        )
    return group
