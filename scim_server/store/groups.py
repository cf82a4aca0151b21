"""Group rows and memberships (DESIGN §3, §4): costs proportional to the members changed.

Members are rows of ``group_members``, never part of the group's JSON document. Adding is an
``INSERT ... ON CONFLICT DO NOTHING`` of exactly the members sent (idempotent), removing a
``DELETE`` of exactly those, and a full replace computes the difference in SQL; each returns
the user keys it actually changed so that effective access is recomputed only for them. Nothing
here ever loads a group's whole member list, except rendering it, which streams.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy import Integer, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from scim_server.scim.errors import InvalidValue
from scim_server.store.access import in_list, in_values
from scim_server.store.filters import ChildStorage, ResourceStorage
from scim_server.store.models import Group, GroupMember, User
from scim_server.store.types import utcnow

GROUP_STORAGE = ResourceStorage(
    model=Group,
    pk_column="pk",
    org_column="org_id",
    document_column="data",
    columns={
        "id": "id",
        "externalid": "external_id",
        "displayname": "display_name",
        "meta.created": "created_at",
        "meta.lastmodified": "last_modified",
    },
    child=ChildStorage(
        model=GroupMember, parent_fk="group_pk", key_column=None, columns={"value": "user_id"}
    ),
    # the resource's schema URIs are bookkeeping, not data
    unfilterable=frozenset({"schemas"}),
)

#: Longest displayName/externalId kept in an indexed column (see store.users).
MAX_INDEXED_LENGTH = 512
RENDER_BATCH = 2000


def check_indexable(name: str, value: str | None) -> None:
    if value is not None and len(value) > MAX_INDEXED_LENGTH:
        raise InvalidValue(
            f'attribute "{name}" is {len(value)} characters long; this server indexes it and '
            f"accepts at most {MAX_INDEXED_LENGTH}"
        )


def resolve_members(session: Session, org_id: int, user_ids: Collection[str]) -> dict[str, int]:
    """Map member values (user ids) to user keys; any value that is not a user of the
    organisation is a 400 naming it (never a silent drop)."""
    wanted = list(dict.fromkeys(user_ids))
    if not wanted:
        return {}
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 5000):
        chunk = wanted[start : start + 5000]
        # FOR KEY SHARE: a user deleted concurrently either waits for this transaction or is
        # already gone (a 400 below), never a foreign-key error at insert time.
        # "org_id + 0": without statistics SQLite preferred the (org_id, pk) index for
        # "org_id = ? AND id IN (100 ids)" and walked every user of the organisation (6.6 ms
        # at 10,000 users, growing with the organisation; issue #7's load benchmark). The
        # expression keeps the tenant condition but leaves the unique index on id as the only
        # index to use, on both databases.
        rows = session.execute(
            select(User.id, User.pk)
            .where(
                User.org_id + 0 == org_id,
                in_values(session, User.id, chunk),
                User.deleted_at.is_(None),
            )
            .with_for_update(read=True, key_share=True)
        )
        found.update({user_id: pk for user_id, pk in rows})
    missing = [value for value in wanted if value not in found]
    if missing:
        shown = ", ".join(f'"{value[:64]}"' for value in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise InvalidValue(
            f"members.value {shown}{more}: no such user in this organisation "
            "(members must be users of the organisation)"
        )
    return found


Changed = list[tuple[int, str]]  # (user key, user id) of members added or removed


@functools.cache
def _add_members(dialect: str) -> Any:
    """``INSERT ... SELECT`` of the members from their user rows, one statement with one list
    of keys, built once: an ``executemany`` of one parameter set per member cost SQLAlchemy
    more than the database (a fifth of a 100-member PATCH on SQLite; on PostgreSQL 400 bound
    parameters to parse). ``org_id + 0``: as in :func:`resolve_members`, the tenant condition
    stays and the primary key is the index to use."""
    users = select(bindparam("group_pk", type_=Integer), User.pk, User.org_id, User.id).where(
        User.org_id + 0 == bindparam("org_id", type_=Integer),
        in_list(dialect, User.pk, "user_pks"),
        User.deleted_at.is_(None),
    )
    members = GroupMember.__table__  # Core: the ORM's bulk-insert path takes no INSERT ... SELECT
    return (
        (postgresql if dialect == "postgresql" else sqlite)
        .insert(members)
        .from_select(["group_pk", "user_pk", "org_id", "user_id"], users)
        .on_conflict_do_nothing()
        .returning(members.c.user_pk, members.c.user_id)
    )


def add_members(session: Session, group: Group, members: dict[str, int]) -> Changed:
    """Add members (id -> user key); returns those that were not members before, in the order
    of ``members``."""
    if not members:
        return []
    statement = _add_members(session.get_bind().dialect.name)
    keys = list(members.values())
    added: Changed = []
    for start in range(0, len(keys), 2000):
        parameters = {
            "group_pk": group.pk,
            "org_id": group.org_id,
            "user_pks": keys[start : start + 2000],
        }
        added.extend((pk, user_id) for pk, user_id in session.execute(statement, parameters))
    order = {pk: index for index, pk in enumerate(keys)}
    added.sort(key=lambda row: order[row[0]])
    return added


def _delete(session: Session, *conditions: Any) -> Changed:
    statement = (
        delete(GroupMember).where(*conditions).returning(GroupMember.user_pk, GroupMember.user_id)
    )
    return [(pk, user_id) for pk, user_id in session.execute(statement)]


def remove_members(session: Session, group: Group, user_ids: Collection[str]) -> Changed:
    """Remove members by user id; removing a non-member is a no-op (RFC 7644 §3.5.2.2)."""
    ids = list(dict.fromkeys(user_ids))
    removed: Changed = []
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        removed.extend(
            _delete(session, GroupMember.group_pk == group.pk, GroupMember.user_id.in_(chunk))
        )
    return removed


def remove_all_members(session: Session, group: Group) -> Changed:
    return _delete(session, GroupMember.group_pk == group.pk)


def replace_members(
    session: Session, group: Group, members: dict[str, int]
) -> tuple[Changed, Changed]:
    """Make the member set exactly ``members``: (added, removed), the difference done in SQL."""
    if not members:
        return [], remove_all_members(session, group)
    removed = _delete(
        session,
        GroupMember.group_pk == group.pk,
        GroupMember.user_pk.not_in(list(members.values())),
    )
    return add_members(session, group, members), removed


def member_users(session: Session, group: Group) -> list[tuple[int, str]]:
    """(user pk, user id) of every member."""
    rows = session.execute(
        select(GroupMember.user_pk, GroupMember.user_id).where(GroupMember.group_pk == group.pk)
    )
    return [(pk, user_id) for pk, user_id in rows]


def member_ids_matching(session: Session, group: Group, user_ids: Collection[str]) -> list[str]:
    """Which of ``user_ids`` are members (an indexed lookup of exactly those)."""
    if not user_ids:
        return []
    return list(
        session.scalars(
            select(GroupMember.user_id).where(
                GroupMember.group_pk == group.pk, GroupMember.user_id.in_(list(user_ids))
            )
        )
    )


def iter_members(
    session: Session, org_id: int, group_pks: Collection[int]
) -> Iterator[tuple[int, str, str]]:
    """(group key, user id, display) of the groups' members, in batches, in a stable order."""
    display = func.coalesce(User.display_name, User.user_name)
    query = (
        select(GroupMember.group_pk, GroupMember.user_id, display)
        .join(User, User.pk == GroupMember.user_pk)
        .where(GroupMember.org_id == org_id, GroupMember.group_pk.in_(list(group_pks)))
        .order_by(GroupMember.group_pk, GroupMember.user_pk)
        .execution_options(yield_per=RENDER_BATCH)
    )
    yield from session.execute(query)


def groups_of_users(
    session: Session, user_pks: Collection[int]
) -> dict[int, list[tuple[str, str]]]:
    """user key -> [(group id, displayName)] for ``User.groups`` (read-only, computed)."""
    if not user_pks:
        return {}
    rows = session.execute(
        select(GroupMember.user_pk, Group.id, Group.display_name)
        .join(Group, Group.pk == GroupMember.group_pk)
        .where(GroupMember.user_pk.in_(list(user_pks)))
        .order_by(GroupMember.user_pk, Group.display_name)
    )
    found: dict[int, list[tuple[str, str]]] = {}
    for user_pk, group_id, name in rows:
        found.setdefault(user_pk, []).append((group_id, name))
    return found


_GROUPS_OF_USER_FOR_UPDATE = (
    select(Group.pk)
    .where(
        Group.pk.in_(
            select(GroupMember.group_pk)
            .join(User, User.pk == GroupMember.user_pk)
            .where(User.org_id == bindparam("org_id"), User.id == bindparam("user_id"))
        )
    )
    .order_by(Group.pk)
    .with_for_update(of=Group)
)


def lock_groups_of_user(session: Session, org_id: int, user_id: str) -> None:
    """Lock, in key order, the groups a user belongs to, before the user itself is locked.

    A group write locks its group first and its members' users after; a user's delete changes
    its groups too (``touch_groups_of_user``), so it must take them in the same order, or the
    two wait for each other (PostgreSQL aborts one as a deadlock: a 503 for the IdP). Key order
    keeps two deletes of members of the same groups apart as well. A membership committed
    between this lock and the user's can still close a cycle; ``perform_write`` runs the
    delete again when PostgreSQL aborts it for that.
    """
    if session.get_bind().dialect.name != "sqlite":  # SQLite: one writer at a time already
        session.execute(_GROUPS_OF_USER_FOR_UPDATE, {"org_id": org_id, "user_id": user_id})


def touch_groups_of_user(session: Session, user_pk: int) -> list[str]:
    """New version and lastModified for every group the user belongs to, before the user goes
    (its memberships leave by ON DELETE CASCADE): a client's cached ETag of such a group must
    not survive the change of its member list. Returns the group ids."""
    now = utcnow()
    statement = (
        update(Group)
        .where(Group.pk.in_(select(GroupMember.group_pk).where(GroupMember.user_pk == user_pk)))
        .values(version=Group.version + 1, last_modified=now)
        .returning(Group.id)
        .execution_options(synchronize_session=False)
    )
    return list(session.scalars(statement))
