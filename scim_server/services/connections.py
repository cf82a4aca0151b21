"""IdP connections of an organisation: listing, and moving resource ownership between them
(DESIGN §5.4 item 7, §8).

A connection owns the users and groups it created (:mod:`scim_server.services.guards`). When an
organisation moves from one IdP to another (Okta to Entra), the new connection must be able to
change what the old one created: ``transfer_ownership`` moves every resource of one connection to
another in one transaction. It changes no SCIM representation, so versions and ``lastModified``
stay as they are (an ETag held by the IdP remains valid).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from scim_server.scim.errors import NotFound
from scim_server.services.errors import ServiceError
from scim_server.services.resources import is_resource_id
from scim_server.store.models import Connection, Group, Organization, User


@dataclass(frozen=True)
class ConnectionView:
    id: str
    name: str
    idp: str
    created_at: datetime
    users: int
    groups: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "idp": self.idp,
            "created": self.created_at.isoformat().replace("+00:00", "Z"),
            "usersOwned": self.users,
            "groupsOwned": self.groups,
        }


def _owned(session: Session, model: type[User] | type[Group], org_id: int) -> dict[str, int]:
    rows = session.execute(
        select(model.owner_connection_id, func.count())
        .where(model.org_id == org_id, model.owner_connection_id.is_not(None))
        .group_by(model.owner_connection_id)
    )
    return {str(owner): count for owner, count in rows}


def list_connections(session: Session, org: Organization) -> list[ConnectionView]:
    """The organisation's connections, oldest first, with how many resources each owns."""
    users = _owned(session, User, org.id)
    groups = _owned(session, Group, org.id)
    connections = session.scalars(
        select(Connection)
        .where(Connection.org_id == org.id)
        .order_by(Connection.created_at, Connection.id)
    )
    return [
        ConnectionView(c.id, c.name, c.idp, c.created_at, users.get(c.id, 0), groups.get(c.id, 0))
        for c in connections
    ]


def connection_by_id(session: Session, org_id: int, connection_id: str) -> Connection:
    """A connection of the organisation by its id (the admin API's paths); 404 otherwise, as
    for another organisation's, whose existence is not told."""
    if not is_resource_id(connection_id):
        raise NotFound(f'connection "{connection_id[:64]}" not found')
    found = session.scalars(
        select(Connection).where(Connection.org_id == org_id, Connection.id == connection_id)
    ).first()
    if found is None:
        raise NotFound(f'connection "{connection_id[:64]}" not found')
    return found


def find_connection(session: Session, org: Organization, id_or_name: str) -> Connection:
    """A connection of ``org`` by id, or by name (exact, then case-insensitive) if unambiguous."""
    wanted = id_or_name.strip()
    candidates = list(session.scalars(select(Connection).where(Connection.org_id == org.id)))
    for matches in (
        [c for c in candidates if c.id == wanted],
        [c for c in candidates if c.name == wanted],
        [c for c in candidates if c.name.lower() == wanted.lower()],
    ):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            ids = ", ".join(c.id for c in matches)
            raise ServiceError(
                f"{len(matches)} connections of {org.slug!r} are named {id_or_name!r} "
                f"({ids}); name it by id"
            )
    known = ", ".join(f"{c.name} ({c.id})" for c in candidates) or "(none)"
    raise ServiceError(
        f"no connection {id_or_name!r} in organisation {org.slug!r}; its connections are: {known}"
    )


@dataclass(frozen=True)
class Transfer:
    source: Connection
    target: Connection
    users: int
    groups: int


def transfer_ownership(
    session: Session, org: Organization, source_ref: str, target_ref: str
) -> Transfer:
    """Make ``target`` the owner of every user and group ``source`` owns (same organisation)."""
    source = find_connection(session, org, source_ref)
    target = find_connection(session, org, target_ref)
    if source.id == target.id:
        raise ServiceError(f"--from and --to are the same connection ({source.id})")
    counts = []
    for model in (User, Group):
        result = session.execute(
            update(model)
            .where(model.org_id == org.id, model.owner_connection_id == source.id)
            .values(owner_connection_id=target.id)
            .execution_options(synchronize_session=False)
        )
        counts.append(result.rowcount)  # type: ignore[attr-defined]
    return Transfer(source, target, counts[0], counts[1])
