"""Roles, access groups, group mappings and effective access (DESIGN §5.2).

Administration (used by the CLI) and :func:`recompute_access`, which every change that can alter
a user's effective role or access groups calls in the transaction of that change: direct
``roles`` on the user, group membership, a group's rename or deletion, a mapping, a role or
access group deleted, the organisation's default role. The rules themselves are the pure
:mod:`scim_server.policy.access`.

Decisions an admin should know about:

- Built-in roles cannot be deleted (the host product relies on them, and the User schema lists
  them as the ``canonicalValues`` of ``roles.value``); custom roles can, unless
  the role is the organisation's default role. Deleting a role or an access group removes the
  mappings that grant it, and the users who held it are recomputed in the same transaction.
- Role and access group names are unique per organisation, case-insensitively; role ranks are
  unique too, so "the highest rank" is never a tie.
- A new organisation has no default role: a user nobody gives a role to has no permissions until
  an admin sets one (``org update SLUG --default-role Viewer``). Least privilege by default.
- A user without a ``user_access`` row has no role and no access groups. Rows are written only
  for users whose access is not empty or has changed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, or_, select
from sqlalchemy.orm import Session

from scim_server.policy import access as policy
from scim_server.scim.errors import Conflict, InvalidValue
from scim_server.scim.schema import ACCESS_USER
from scim_server.services import guards
from scim_server.services.errors import ServiceError
from scim_server.store.access import (
    exclusive_rules_turn,
    in_values,
    shared_rules_turn,
    upsert_user_access,
)
from scim_server.store.models import (
    AccessGroup,
    Group,
    GroupMapping,
    GroupMember,
    Organization,
    Role,
    User,
    UserAccess,
    UserAttributeValue,
)
from scim_server.store.text import same_text

_Named = TypeVar("_Named", Role, AccessGroup)

#: A user's effective access: role name (or None) and access group names, sorted.
Access = tuple[str | None, tuple[str, ...]]
NO_ACCESS: Access = (None, ())

#: Users named one by one in an admin event; beyond that only the count (DESIGN §6).
MAX_LISTED_USERS = 1000
#: User pks per ``IN (...)`` list: far under the bound-parameter limits of both databases.
USER_CHUNK = 5000
MAX_ROLE_NAME = 100
MAX_ACCESS_GROUP_NAME = 200
MAX_MATCH_VALUE = 512
#: The User attribute (and its index rows' key) carrying direct role assignments by name.
ROLES_ATTRIBUTE = "roles"


@dataclass(frozen=True)
class BuiltInRole:
    name: str
    rank: int
    is_admin: bool
    permissions: tuple[str, ...]


#: Seeded into every organisation. Migration 0003 seeds existing organisations with the same list
#: (``tests/unit/test_access_service.py`` keeps the two in step).
BUILT_IN_ROLES: tuple[BuiltInRole, ...] = (
    BuiltInRole("Administrator", 100, True, ("*",)),
    BuiltInRole(
        "Editor", 40, False, ("campaigns.read", "campaigns.write", "campaigns.status.update")
    ),
    BuiltInRole("Collaborator", 30, False, ("campaigns.read", "campaigns.comment")),
    BuiltInRole(
        "Campaign Status Updater", 20, False, ("campaigns.read", "campaigns.status.update")
    ),
    BuiltInRole("Viewer", 10, False, ("campaigns.read",)),
)


def seed_roles(session: Session, org_id: int) -> None:
    """Give a new organisation the built-in roles."""
    session.add_all(
        Role(
            org_id=org_id,
            name=role.name,
            rank=role.rank,
            is_admin=role.is_admin,
            permissions=list(role.permissions),
            built_in=True,
        )
        for role in BUILT_IN_ROLES
    )
    session.flush()


# -- effective access ------------------------------------------------------------------------


def _chunks(user_pks: Collection[int] | None) -> list[list[int] | None]:
    if user_pks is None:
        return [None]
    ordered = sorted(set(user_pks))
    return [ordered[i : i + USER_CHUNK] for i in range(0, len(ordered), USER_CHUNK)]


def lock_rules(session: Session, org_id: int) -> None:
    """Take the organisation's rules (mappings, roles, default role) for a change of them.

    The organisation's rules lock alone, then its row ``FOR NO KEY UPDATE``: every
    recomputation holds the rules shared and the row ``FOR SHARE`` (below), so a mapping change
    and a membership change never read each other's state half-way and leave a user with
    access that matches neither. ``NO KEY``: a write that inserted a row referencing the
    organisation (a new group: its foreign key holds the row ``FOR KEY SHARE``) and then waits
    for the rules must not also hold up the admin, or the two would deadlock. On SQLite the
    write transaction already excludes every other writer.
    """
    session.execute(
        select(Organization.id)
        .where(Organization.id == org_id, exclusive_rules_turn(org_id))
        .with_for_update(key_share=True)
    )


def hold_rules(session: Session, org_id: int) -> None:
    """Hold the organisation's rules and settings still (``FOR SHARE``) for this transaction.

    A user write takes this *before* it locks the user, so every path takes the organisation
    row first and the user rows after: a rule change (``lock_rules``, then users) and a role
    change by SCIM (user, then the rules for its recomputation) can no longer deadlock, and
    the write reads settings no concurrent ``org update`` is changing.
    """
    session.execute(
        select(Organization.id)
        .where(Organization.id == org_id, shared_rules_turn(org_id))
        .with_for_update(read=True)
    )


def _lock_for_recompute(session: Session, org_id: int, chunk: list[int] | None) -> None:
    """Hold the organisation's rules still while recomputing (see :func:`lock_rules`)."""
    hold_rules(session, org_id)


def _lock_users(session: Session, org_id: int, chunk: list[int] | None) -> None:
    """Serialise recomputations of the same users (PostgreSQL, READ COMMITTED).

    Two transactions adding the same users to two mapped groups must not each compute without
    the other's membership and let the last commit win: the users are locked in key order
    (``FOR NO KEY UPDATE``, which foreign-key checks of membership inserts do not wait for),
    so the second recomputation starts after the first commits and reads its memberships.
    """
    if chunk:
        session.execute(
            select(User.pk)
            .where(User.org_id == org_id, in_values(session, User.pk, chunk))
            .order_by(User.pk)
            .with_for_update(key_share=True)
        )


def recompute_access(
    session: Session,
    org_id: int,
    user_pks: Collection[int] | None = None,
    *,
    ignore_roles: Collection[int] = (),
    ignore_access_groups: Collection[int] = (),
    unless_unmapped: Collection[policy.GroupRef] | None = None,
) -> dict[int, tuple[Access, Access]]:
    """Recompute and store the effective access of users of ``org_id``; return what changed.

    ``user_pks``: the users to recompute (pks of other organisations are ignored); None: every
    user of the organisation. The result maps each user whose access changed to
    ``(before, after)``; users whose access is unchanged are left out.

    ``ignore_roles`` / ``ignore_access_groups``: compute as if these (and the mappings granting
    them) were already gone. A caller deleting them recomputes first and deletes after, so the
    ``before`` side still names what is being taken away.

    ``unless_unmapped``: the identities (before and after) of the one IdP group whose members
    changed. When no mapping matches any of them, the change grants and takes nothing (a group
    counts for access only through mappings), so nothing is recomputed: a push to a department
    group of 10,000 no mapping names skips five statements per request. The mappings are read
    under the rules lock, so a mapping created concurrently either sees these members or is
    seen here.

    Cost: a constant number of statements, whatever the size of the users' groups and, when
    ``user_pks`` is given, of the organisation (three more per 5000 users given): the roles with
    the default role, and the mappings, once; then per chunk of users their direct roles, their
    memberships (skipped when the organisation has no mapping) and their stored rows; the names
    of the access groups involved (skipped when none is); one upsert per 1000 changed rows.
    """
    chunks = _chunks(user_pks)
    if not chunks:
        return {}
    _lock_for_recompute(session, org_id, None)
    mappings = [
        policy.GroupMapping(policy.match_kind(kind), value, role_pk, group_pk)
        for kind, value, role_pk, group_pk in session.execute(
            select(
                GroupMapping.match_kind,
                GroupMapping.match_value,
                GroupMapping.role_pk,
                GroupMapping.access_group_pk,
            ).where(GroupMapping.org_id == org_id)
        )
        if role_pk not in ignore_roles and group_pk not in ignore_access_groups
    ]
    if unless_unmapped is not None and not any(
        policy.mapping_matches(mapping, group.display_name, group.external_id)
        for mapping in mappings
        for group in unless_unmapped
    ):
        return {}
    default_of_org = (
        select(Organization.default_role_pk).where(Organization.id == org_id).scalar_subquery()
    )
    all_roles: dict[int, policy.Role] = {}
    default_pk: int | None = None
    for pk, name, rank, is_admin, org_default in session.execute(
        select(Role.pk, Role.name, Role.rank, Role.is_admin, default_of_org).where(
            Role.org_id == org_id
        )
    ):
        all_roles[pk] = policy.Role(pk, name, rank, is_admin)
        default_pk = org_default
    # the default role is a role: an organisation without roles has no default either
    live_roles = {pk: role for pk, role in all_roles.items() if pk not in ignore_roles}
    default_role = live_roles.get(default_pk) if default_pk is not None else None

    pending: list[tuple[int, tuple[int | None, list[int]] | None, tuple[int | None, list[int]]]]
    pending = []
    for chunk in chunks:
        _lock_users(session, org_id, chunk)
        direct = _direct_roles(session, org_id, chunk)
        groups = _memberships(session, org_id, chunk) if mappings else {}
        stored = _stored_access(session, org_id, chunk)
        for user_pk, names in direct.items():
            role, granted = policy.resolve(
                names, groups.get(user_pk, ()), mappings, live_roles, default_role
            )
            new_row = (role.key if role else None, sorted(granted))
            old_row = stored.get(user_pk)
            if old_row is None and new_row == (None, []):
                continue  # no row means no access: nothing to write
            if old_row is not None and (old_row[0], sorted(old_row[1])) == new_row:
                continue
            pending.append((user_pk, old_row, new_row))

    _refuse_temporary_admins(
        session,
        [
            (pk, live_roles[new[0]].name)
            for pk, _, new in pending
            if new[0] is not None and live_roles[new[0]].is_admin
        ],
    )
    named = {pk for _, old, new in pending for pk in [*(old[1] if old else []), *new[1]]}
    group_names: dict[int, str] = {}
    if named:
        group_names = {
            pk: name
            for pk, name in session.execute(
                select(AccessGroup.pk, AccessGroup.name).where(
                    AccessGroup.org_id == org_id, AccessGroup.pk.in_(sorted(named))
                )
            )
        }
    changes: dict[int, tuple[Access, Access]] = {}
    writes: list[dict[str, Any]] = []
    for user_pk, old_row, new_row in pending:
        writes.append(
            {
                "user_pk": user_pk,
                "org_id": org_id,
                "role_pk": new_row[0],
                "access_group_pks": new_row[1],
            }
        )
        before = _named(old_row, all_roles, group_names)
        after = _named(new_row, all_roles, group_names)
        if before != after:
            changes[user_pk] = (before, after)
    upsert_user_access(session, writes)
    # The last-admin guard (DESIGN §5.4 item 6): every change of an effective role passes here.
    admins = {role.name for role in all_roles.values() if role.is_admin}
    lost = [pk for pk, (old, new) in changes.items() if old[0] in admins and new[0] not in admins]
    guards.check_role_losses(session, org_id, lost)
    return changes


#: The organisation's roles, for :func:`initial_access` (prebuilt, see ``users._user_by_id``).
_ORG_ROLES = select(Role.pk, Role.name, Role.rank, Role.is_admin).where(
    Role.org_id == bindparam("org_id")
)


def initial_access(
    session: Session,
    org_id: int,
    user: User,
    direct_role_names: Sequence[str],
    default_role_pk: int | None,
) -> Access:
    """Store and return the effective access of a user created in this transaction.

    The rule of :func:`recompute_access` (``policy.resolve``), fed what a new user can have:
    its direct roles and the organisation's default role. It belongs to no group yet, so no
    mapping can apply, and it has no stored access to compare with; recomputing it read rules,
    mappings, memberships and stored rows anyway (six statements per create, issue #7). Here:
    none when the user has no direct role and the organisation no default role, else the roles
    and one upsert. Like the recomputation it refuses (409) an admin role for a user with
    temporary access; nobody loses an admin role, so the last-admin guard has nothing to check.

    The caller holds the organisation's rules (``load_user_settings(hold=True)``) and read
    ``default_role_pk`` under that hold.
    """
    if not direct_role_names and default_role_pk is None:
        return NO_ACCESS
    roles = {
        pk: policy.Role(pk, name, rank, is_admin)
        for pk, name, rank, is_admin in session.execute(_ORG_ROLES, {"org_id": org_id})
    }
    default_role = roles.get(default_role_pk) if default_role_pk is not None else None
    role, _ = policy.resolve(direct_role_names, (), (), roles, default_role)
    if role is None:
        return NO_ACCESS
    if role.is_admin and user.access_expires_at is not None:
        raise Conflict(_temporary_admin_detail(user.user_name, user.access_expires_at, role.name))
    upsert_user_access(
        session,
        [{"user_pk": user.pk, "org_id": org_id, "role_pk": role.key, "access_group_pks": []}],
    )
    return (role.name, ())


def _temporary_admin_detail(user_name: str, expires_at: datetime, role_name: str) -> str:
    end = expires_at.isoformat().replace("+00:00", "Z")
    return (
        f'user "{user_name}" has temporary access (accessExpiresAt {end}) and cannot hold the '
        f'admin role "{role_name}", whether given directly in roles or by a mapped group; '
        "remove the role or the group membership, or clear accessExpiresAt first"
    )


def _refuse_temporary_admins(session: Session, admins: list[tuple[int, str]]) -> None:
    """Refuse (409) a change that gives an admin role to a user with temporary access
    (DESIGN §5.4 item 4), whichever change it is: a user's roles, a membership, a mapping."""
    if not admins:
        return
    roles = dict(admins)
    row = session.execute(
        select(User.pk, User.user_name, User.access_expires_at)
        .where(User.pk.in_(sorted(roles)), User.access_expires_at.is_not(None))
        .order_by(User.pk)
        .limit(1)
    ).first()
    if row is not None and row[2] is not None:
        raise Conflict(_temporary_admin_detail(row[1], row[2], roles[row[0]]))


def refuse_temporary_admin(
    session: Session, org_id: int, user: User, role_name: str | None
) -> None:
    """Refuse (409) a user with temporary access whose effective role is an admin role."""
    if user.access_expires_at is None or role_name is None:
        return
    is_admin = session.scalar(
        select(Role.is_admin).where(Role.org_id == org_id, Role.name == role_name)
    )
    if is_admin:
        raise Conflict(_temporary_admin_detail(user.user_name, user.access_expires_at, role_name))


def _direct_roles(session: Session, org_id: int, chunk: list[int] | None) -> dict[int, list[str]]:
    """Every user of the chunk (of the organisation only), with its direct role names."""
    query = (
        select(User.pk, UserAttributeValue.value)
        .outerjoin(
            UserAttributeValue,
            and_(
                UserAttributeValue.user_pk == User.pk,
                UserAttributeValue.attribute == ROLES_ATTRIBUTE,
            ),
        )
        # soft-deleted users (DESIGN §5.3) hold no access and are never recomputed
        .where(User.org_id == org_id, User.deleted_at.is_(None))
    )
    if chunk is not None:
        query = query.where(in_values(session, User.pk, chunk))
    direct: dict[int, list[str]] = {}
    for user_pk, value in session.execute(query):
        names = direct.setdefault(user_pk, [])
        if value is not None:
            names.append(value)
    return direct


def _memberships(
    session: Session, org_id: int, chunk: list[int] | None
) -> dict[int, list[policy.GroupRef]]:
    query = (
        select(GroupMember.user_pk, Group.display_name, Group.external_id)
        .join(Group, Group.pk == GroupMember.group_pk)
        .where(GroupMember.org_id == org_id)
    )
    if chunk is not None:
        query = query.where(in_values(session, GroupMember.user_pk, chunk))
    groups: dict[int, list[policy.GroupRef]] = defaultdict(list)
    for user_pk, display_name, external_id in session.execute(query):
        groups[user_pk].append(policy.GroupRef(display_name, external_id))
    return groups


def _stored_access(
    session: Session, org_id: int, chunk: list[int] | None
) -> dict[int, tuple[int | None, list[int]]]:
    query = select(UserAccess.user_pk, UserAccess.role_pk, UserAccess.access_group_pks).where(
        UserAccess.org_id == org_id
    )
    if chunk is not None:
        query = query.where(in_values(session, UserAccess.user_pk, chunk))
    return {
        user_pk: (role_pk, list(group_pks or []))
        for user_pk, role_pk, group_pks in session.execute(query)
    }


def _named(
    row: tuple[int | None, list[int]] | None,
    roles: Mapping[int, policy.Role],
    group_names: Mapping[int, str],
) -> Access:
    if row is None:
        return NO_ACCESS
    role_pk, group_pks = row
    role = roles.get(role_pk) if role_pk is not None else None
    names = sorted(group_names[pk] for pk in group_pks if pk in group_names)
    return (role.name if role else None, tuple(names))


def access_changes(before: Access, after: Access) -> dict[str, list[Any]]:
    """Audit ``changes`` entries for one user's access, named as the SCIM attributes are."""
    changes: dict[str, list[Any]] = {}
    if before[0] != after[0]:
        changes[f"{ACCESS_USER}:role"] = [before[0], after[0]]
    if before[1] != after[1]:
        changes[f"{ACCESS_USER}:accessGroups"] = [list(before[1]), list(after[1])]
    return changes


def affected_users(
    session: Session, changes: Mapping[int, tuple[Access, Access]]
) -> dict[str, Any]:
    """The users whose access an admin action changed, for its audit event and CLI output:
    ``{"count": n, "users": [{"id", "userName", "role", "accessGroups"}, ...]}``, at most
    :data:`MAX_LISTED_USERS` listed (one statement)."""
    listed = sorted(changes)[:MAX_LISTED_USERS]
    names = (
        {
            pk: (user_id, user_name)
            for pk, user_id, user_name in session.execute(
                select(User.pk, User.id, User.user_name).where(User.pk.in_(listed))
            )
        }
        if listed
        else {}
    )
    users = []
    for pk in listed:
        before, after = changes[pk]
        user_id, user_name = names.get(pk, (None, None))
        users.append(
            {
                "id": user_id,
                "userName": user_name,
                "role": [before[0], after[0]],
                "accessGroups": [list(before[1]), list(after[1])],
            }
        )
    return {"count": len(changes), "users": users}


# -- direct roles on users -------------------------------------------------------------------


def _same_name(a: str, b: str) -> bool:
    """Two names of roles, access groups or groups are the same to ``policy.resolve`` (Python's
    ``str.lower``). The database's unique indexes fold with its own ``lower()``, which differs on
    a few letters ("İ", a final sigma): a new name is refused when either says it is taken, so
    the index never fails with a 500 and the policy never sees two names it cannot tell apart."""
    return a.lower() == b.lower()


def require_roles_exist(session: Session, org_id: int, names: Iterable[str]) -> None:
    """Refuse direct ``roles`` values naming no role of the organisation (400 invalidValue).

    An IdP sending a misspelt role would otherwise give the user no role, silently.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return
    known = [name for (name,) in session.execute(_role_names_query(org_id))]
    lowered = {name.lower() for name in known}
    unknown = [name for name in wanted if name.lower() not in lowered]
    if not unknown:
        return
    shown = ", ".join(f'"{name[:100]}"' for name in unknown[:10])
    which = "value" if len(unknown) == 1 else "values"
    raise InvalidValue(
        f"roles {which} {shown} must name a role of this organisation (case-insensitive); "
        f"its roles are: {', '.join(known) or '(none)'}"
    )


def _role_names_query(org_id: int) -> Any:
    return select(Role.name).where(Role.org_id == org_id).order_by(Role.rank.desc(), Role.name)


# -- roles -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleView:
    name: str
    rank: int
    is_admin: bool
    built_in: bool
    permissions: list[str]
    default: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rank": self.rank,
            "isAdmin": self.is_admin,
            "builtIn": self.built_in,
            "permissions": self.permissions,
            "default": self.default,
        }


def _view(role: Role, default_pk: int | None) -> RoleView:
    return RoleView(
        role.name,
        role.rank,
        role.is_admin,
        role.built_in,
        list(role.permissions),
        role.pk == default_pk,
    )


def list_roles(session: Session, org: Organization) -> list[RoleView]:
    """The organisation's roles, highest rank first."""
    roles = session.scalars(
        select(Role).where(Role.org_id == org.id).order_by(Role.rank.desc(), Role.name)
    )
    return [_view(role, org.default_role_pk) for role in roles]


def _clean_name(kind: str, name: str, limit: int) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise ServiceError(f"{kind} name must not be empty")
    if len(cleaned) > limit:
        raise ServiceError(f"{kind} name is {len(cleaned)} characters long; at most {limit}")
    return cleaned


def _by_name(candidates: Sequence[_Named], name: str) -> _Named | None:
    """The one of ``candidates`` called ``name``: exactly, else by the access rules' fold
    (``_same_name``), the one ``policy.resolve`` reads roles' names with, so that an admin
    names a role as a user's ``roles`` value does. Not by the database's ``lower()``: for a few
    letters it says otherwise (the clash checks keep both from ever disagreeing on who is
    meant)."""
    wanted = name.strip()
    for matches in (
        [c for c in candidates if c.name == wanted],
        [c for c in candidates if _same_name(c.name, wanted)],
    ):
        if matches:
            return matches[0]
    return None


def find_role(session: Session, org_id: int, name: str) -> Role:
    roles = session.scalars(select(Role).where(Role.org_id == org_id).order_by(Role.pk)).all()
    role = _by_name(roles, name)
    if role is None:
        known = ", ".join(session.scalars(_role_names_query(org_id)))
        raise NoSuchName(f"no role {name!r} in this organisation; its roles are: {known}")
    return role


def create_role(
    session: Session,
    org: Organization,
    name: str,
    *,
    rank: int,
    permissions: Sequence[str] = (),
    is_admin: bool = False,
) -> RoleView:
    """A custom role. Names are unique case-insensitively, ranks are unique.

    Users whose ``roles`` already name it (sent while it did not exist, or kept after it was
    deleted) are recomputed: the name now grants the role.
    """
    lock_rules(session, org.id)
    name = _clean_name("role", name, MAX_ROLE_NAME)
    existing = session.scalars(select(Role).where(Role.org_id == org.id)).all()
    taken = session.scalar(
        select(Role.name).where(Role.org_id == org.id, same_text(Role.name, name))
    )
    for role in existing:
        if role.name == taken or _same_name(role.name, name):
            raise ServiceError(f"role {role.name!r} already exists (names are case-insensitive)")
        if role.rank == rank:
            raise ServiceError(
                f"rank {rank} is already the rank of role {role.name!r}; ranks decide which role "
                "wins when a user gets several, so each role needs its own"
            )
    role = Role(
        org_id=org.id,
        name=name,
        rank=rank,
        is_admin=is_admin,
        permissions=list(dict.fromkeys(permissions)),
        built_in=False,
    )
    session.add(role)
    session.flush()
    # the users ``policy.resolve`` will now give it, by its rule (see ``_same_name``)
    naming = sorted(
        {
            user_pk
            for user_pk, value in session.execute(
                select(UserAttributeValue.user_pk, UserAttributeValue.value).where(
                    UserAttributeValue.org_id == org.id, UserAttributeValue.attribute == "roles"
                )
            )
            if value is not None and _same_name(value, name)
        }
    )
    if naming:
        recompute_access(session, org.id, list(naming))
    return _view(role, org.default_role_pk)


def role_created_changes(view: RoleView) -> dict[str, Any]:
    """The ``role.create`` event's change, from the CLI and the admin API alike."""
    return {
        "name": [None, view.name],
        "rank": [None, view.rank],
        "isAdmin": [None, view.is_admin],
        "permissions": [None, view.permissions],
    }


@dataclass(frozen=True)
class Removal:
    """What deleting a role or access group took with it."""

    name: str
    mappings_removed: int
    changes: dict[int, tuple[Access, Access]]

    def event_changes(self, users: dict[str, Any]) -> dict[str, Any]:
        """The ``role.delete`` / ``access_group.delete`` event's change."""
        return {
            "name": [self.name, None],
            "mappingsRemoved": self.mappings_removed,
            "affectedUsers": users,
        }

    def result(self, users: dict[str, Any]) -> dict[str, Any]:
        return {
            "deleted": self.name,
            "mappingsRemoved": self.mappings_removed,
            "affectedUsers": users,
        }


def delete_role(session: Session, org: Organization, name: str) -> Removal:
    """Delete a custom role, the mappings granting it, and recompute the users who held it."""
    lock_rules(session, org.id)
    role = find_role(session, org.id, name)
    if role.built_in:
        raise ServiceError(f"role {role.name!r} is built in and cannot be deleted")
    if org.default_role_pk == role.pk:
        raise ServiceError(
            f"role {role.name!r} is the organisation's default role; "
            "choose another first (org update --default-role ROLE|none)"
        )
    holders = session.scalars(
        select(UserAccess.user_pk).where(UserAccess.org_id == org.id, UserAccess.role_pk == role.pk)
    ).all()
    mappings = _count_mappings(session, GroupMapping.role_pk == role.pk)
    changes = recompute_access(session, org.id, holders, ignore_roles={role.pk})
    removed_name = role.name
    session.delete(role)  # its mappings go by ON DELETE CASCADE
    session.flush()
    return Removal(removed_name, mappings, changes)


def _count_mappings(session: Session, condition: ColumnElement[bool]) -> int:
    return session.scalar(select(func.count()).select_from(GroupMapping).where(condition)) or 0


# -- access groups ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessGroupView:
    name: str
    campaign_ids: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "campaignIds": self.campaign_ids}


def list_access_groups(session: Session, org: Organization) -> list[AccessGroupView]:
    groups = session.scalars(
        select(AccessGroup).where(AccessGroup.org_id == org.id).order_by(AccessGroup.name)
    )
    return [AccessGroupView(group.name, list(group.campaign_ids)) for group in groups]


def find_access_group(session: Session, org_id: int, name: str) -> AccessGroup:
    groups = session.scalars(
        select(AccessGroup).where(AccessGroup.org_id == org_id).order_by(AccessGroup.pk)
    ).all()
    group = _by_name(groups, name)
    if group is None:
        known = ", ".join(
            session.scalars(
                select(AccessGroup.name)
                .where(AccessGroup.org_id == org_id)
                .order_by(AccessGroup.name)
            )
        )
        raise NoSuchName(
            f"no access group {name!r} in this organisation; its access groups are: "
            f"{known or '(none)'}"
        )
    return group


def create_access_group(
    session: Session, org: Organization, name: str, campaign_ids: Sequence[str] = ()
) -> AccessGroupView:
    lock_rules(session, org.id)  # two creates of one name: the second sees the first's row
    name = _clean_name("access group", name, MAX_ACCESS_GROUP_NAME)
    clash = session.scalar(
        select(AccessGroup.name).where(
            AccessGroup.org_id == org.id, same_text(AccessGroup.name, name)
        )
    ) or next(
        (
            other
            for other in session.scalars(
                select(AccessGroup.name).where(AccessGroup.org_id == org.id)
            )
            if _same_name(other, name)
        ),
        None,
    )
    if clash is not None:
        raise ServiceError(f"access group {clash!r} already exists (names are case-insensitive)")
    campaigns = list(dict.fromkeys(c.strip() for c in campaign_ids if c.strip()))
    session.add(AccessGroup(org_id=org.id, name=name, campaign_ids=campaigns))
    session.flush()
    return AccessGroupView(name, campaigns)


def delete_access_group(session: Session, org: Organization, name: str) -> Removal:
    """Delete an access group and the mappings granting it; recompute the users it reached."""
    lock_rules(session, org.id)
    group = find_access_group(session, org.id, name)
    granting = session.scalars(
        select(GroupMapping).where(GroupMapping.access_group_pk == group.pk)
    ).all()
    holders = _members_matching(session, org.id, granting)
    changes = recompute_access(session, org.id, holders, ignore_access_groups={group.pk})
    removed_name = group.name
    session.delete(group)  # its mappings go by ON DELETE CASCADE
    session.flush()
    return Removal(removed_name, len(granting), changes)


# -- group mappings --------------------------------------------------------------------------


@dataclass(frozen=True)
class MappingView:
    id: int
    kind: str
    value: str
    role: str | None
    access_group: str | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "match": self.kind,
            "value": self.value,
            "role": self.role,
            "accessGroup": self.access_group,
            "created": self.created_at.isoformat().replace("+00:00", "Z"),
        }

    def event_changes(self, added: bool) -> dict[str, Any]:
        """The mapping as its ``mapping.add`` (or ``mapping.remove``) event records it."""

        def pair(value: Any) -> list[Any]:
            return [None, value] if added else [value, None]

        changes = {"match": pair(self.kind), "value": pair(self.value)}
        if self.role is not None:
            changes["role"] = pair(self.role)
        else:
            changes["accessGroup"] = pair(self.access_group)
        return changes

    def describe(self) -> str:
        match = {"name": "group named", "prefix": "groups named", "external_id": "group"}
        target = self.value + "*" if self.kind == "prefix" else self.value
        if self.kind == "external_id":
            target = f"with externalId {self.value}"
        grant = f"role {self.role}" if self.role else f"access group {self.access_group}"
        return f"{match[self.kind]} {target} -> {grant}"


class NoSuchName(ServiceError):
    """A role or access group the organisation does not have (a 404 where it is the target,
    an invalid value where a body names it)."""


class NoSuchMapping(ServiceError):
    """``mapping remove`` of an id the organisation does not have."""


@dataclass(frozen=True)
class MappingChange:
    mapping: MappingView
    changes: dict[int, tuple[Access, Access]]


def _mapping_views(
    session: Session, org_id: int, *conditions: ColumnElement[bool]
) -> list[MappingView]:
    query = (
        select(GroupMapping, Role.name, AccessGroup.name)
        .outerjoin(Role, Role.pk == GroupMapping.role_pk)
        .outerjoin(AccessGroup, AccessGroup.pk == GroupMapping.access_group_pk)
        .where(GroupMapping.org_id == org_id, *conditions)
        .order_by(GroupMapping.pk)
    )
    return [
        MappingView(m.pk, m.match_kind, m.match_value, role, group, m.created_at)
        for m, role, group in session.execute(query)
    ]


def list_mappings(session: Session, org: Organization) -> list[MappingView]:
    return _mapping_views(session, org.id)


def _members_matching(session: Session, org_id: int, mappings: Sequence[GroupMapping]) -> list[int]:
    """The users in any group one of ``mappings`` matches.

    Which groups match is decided by ``policy.mapping_matches`` itself, the rule the
    recomputation applies, not by a SQL rendering of it: PostgreSQL's ``lower()`` and Python's
    ``str.lower`` fold some letters differently ("İ", a final sigma), and a SQL rule that found
    other groups than the policy left a removed mapping's grant in place. The organisation's
    group names are read for it (mapping changes are rare admin actions); the members of the
    matching groups are then one statement per 5,000 groups.
    """
    if not mappings:
        return []
    rules = [policy.GroupMapping(policy.match_kind(m.match_kind), m.match_value) for m in mappings]
    matched = [
        pk
        for pk, display_name, external_id in session.execute(
            select(Group.pk, Group.display_name, Group.external_id).where(Group.org_id == org_id)
        )
        if any(policy.mapping_matches(rule, display_name, external_id) for rule in rules)
    ]
    members: set[int] = set()
    for start in range(0, len(matched), USER_CHUNK):  # SQLite binds each key of an IN list
        chunk = matched[start : start + USER_CHUNK]
        members.update(
            session.scalars(
                select(GroupMember.user_pk).where(
                    GroupMember.org_id == org_id, in_values(session, GroupMember.group_pk, chunk)
                )
            )
        )
    return sorted(members)


def _match(
    group_name: str | None, group_prefix: str | None, group_external_id: str | None
) -> tuple[str, str]:
    given = [
        (kind, value)
        for kind, value in (
            ("name", group_name),
            ("prefix", group_prefix),
            ("external_id", group_external_id),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise ServiceError("give exactly one of --group-name, --group-prefix, --group-external-id")
    kind, value = given[0]
    if not value.strip():
        raise ServiceError("the group name, prefix or externalId to match must not be empty")
    if len(value) > MAX_MATCH_VALUE:
        raise ServiceError(f"the value to match is longer than {MAX_MATCH_VALUE} characters")
    return kind, value


def _grant(
    session: Session, org_id: int, role: str | None, access_group: str | None
) -> tuple[Role | None, AccessGroup | None]:
    if (role is None) == (access_group is None):
        raise ServiceError("give exactly one of --role, --access-group")
    if role is not None:
        return find_role(session, org_id, role), None
    assert access_group is not None
    return None, find_access_group(session, org_id, access_group)


def _same_value(kind: str, a: str, b: str) -> bool:
    return a == b if kind == "external_id" else _same_name(a, b)


def _find_mappings(
    session: Session,
    org_id: int,
    kind: str,
    value: str,
    role: Role | None,
    group: AccessGroup | None,
) -> list[GroupMapping]:
    granting_role = GroupMapping.role_pk == role.pk if role else GroupMapping.role_pk.is_(None)
    granting_group = (
        GroupMapping.access_group_pk == group.pk
        if group
        else GroupMapping.access_group_pk.is_(None)
    )
    candidates = session.scalars(
        select(GroupMapping).where(
            GroupMapping.org_id == org_id,
            GroupMapping.match_kind == kind,
            granting_role,
            granting_group,
        )
    )
    return [m for m in candidates if _same_value(kind, m.match_value, value)]


def add_mapping(
    session: Session,
    org: Organization,
    *,
    group_name: str | None = None,
    group_prefix: str | None = None,
    group_external_id: str | None = None,
    role: str | None = None,
    access_group: str | None = None,
) -> MappingChange:
    """Map matching IdP groups to a role or an access group; recompute their members."""
    lock_rules(session, org.id)
    kind, value = _match(group_name, group_prefix, group_external_id)
    granted_role, granted_group = _grant(session, org.id, role, access_group)
    if _find_mappings(session, org.id, kind, value, granted_role, granted_group):
        raise ServiceError("this mapping exists already")
    mapping = GroupMapping(
        org_id=org.id,
        match_kind=kind,
        match_value=value,
        role_pk=granted_role.pk if granted_role else None,
        access_group_pk=granted_group.pk if granted_group else None,
    )
    session.add(mapping)
    session.flush()
    changes = recompute_access(session, org.id, _members_matching(session, org.id, [mapping]))
    view = _mapping_views(session, org.id, GroupMapping.pk == mapping.pk)[0]
    return MappingChange(view, changes)


def remove_mapping(
    session: Session,
    org: Organization,
    mapping_id: int | None = None,
    *,
    group_name: str | None = None,
    group_prefix: str | None = None,
    group_external_id: str | None = None,
    role: str | None = None,
    access_group: str | None = None,
) -> MappingChange:
    """Remove a mapping, by its id or by what it matches and grants; recompute its members."""
    lock_rules(session, org.id)
    described = any(
        v is not None for v in (group_name, group_prefix, group_external_id, role, access_group)
    )
    if (mapping_id is None) == (not described):
        raise ServiceError(
            "name the mapping either by its id (see `mapping list`) or by the options it was "
            "added with, not both"
        )
    if mapping_id is not None:
        mapping = session.scalar(
            select(GroupMapping).where(GroupMapping.org_id == org.id, GroupMapping.pk == mapping_id)
        )
        if mapping is None:
            raise NoSuchMapping(f"no mapping {mapping_id} in this organisation (see mapping list)")
    else:
        kind, value = _match(group_name, group_prefix, group_external_id)
        granted_role, granted_group = _grant(session, org.id, role, access_group)
        found = _find_mappings(session, org.id, kind, value, granted_role, granted_group)
        if not found:
            raise ServiceError("no such mapping in this organisation (see mapping list)")
        mapping = found[0]
    view = _mapping_views(session, org.id, GroupMapping.pk == mapping.pk)[0]
    members = _members_matching(session, org.id, [mapping])
    session.execute(delete(GroupMapping).where(GroupMapping.pk == mapping.pk))
    changes = recompute_access(session, org.id, members)
    return MappingChange(view, changes)


# -- default role ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DefaultRoleChange:
    before: str | None
    after: str | None
    changes: dict[int, tuple[Access, Access]]


def set_default_role(
    session: Session, org: Organization, role_name_or_none: str | None
) -> DefaultRoleChange:
    """Set (or clear, with None) the role of users nobody gives one; recompute those users.

    Only users whose effective role is the old default can change: everyone else has a role of
    their own, which the default never overrides.
    """
    lock_rules(session, org.id)
    old_pk = org.default_role_pk
    before = session.get(Role, old_pk) if old_pk is not None else None
    new = find_role(session, org.id, role_name_or_none) if role_name_or_none is not None else None
    if (new.pk if new is not None else None) == old_pk:
        return DefaultRoleChange(before.name if before else None, new.name if new else None, {})
    org.default_role_pk = new.pk if new is not None else None
    session.flush()
    # Users falling back on the old default: their stored role is it (no row, or a NULL role,
    # when the old default was none). Holders of the same role by grant are recomputed too, and
    # keep it.
    if old_pk is not None:
        fell_back: ColumnElement[bool] = UserAccess.role_pk == old_pk
    else:
        fell_back = or_(UserAccess.user_pk.is_(None), UserAccess.role_pk.is_(None))
    affected = session.scalars(
        select(User.pk)
        .outerjoin(UserAccess, UserAccess.user_pk == User.pk)
        .where(User.org_id == org.id, fell_back)
    ).all()
    changes = recompute_access(session, org.id, affected)
    return DefaultRoleChange(
        before.name if before is not None else None,
        new.name if new is not None else None,
        changes,
    )
