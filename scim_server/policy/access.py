"""Effective role and access groups of a user (DESIGN §5.2), as a pure function.

Inputs are plain values loaded by the service layer; nothing here reads or writes the store.

- A group mapping matches an IdP group by ``displayName`` (exact, case-insensitive), by
  ``displayName`` prefix (case-insensitive) or by ``externalId`` (exact), and grants one role or
  one access group. An unmapped group grants nothing.
- The effective role is the highest-rank role among the user's direct roles (``User.roles``
  values, by role name, case-insensitive) and the roles granted by the mappings that match the
  groups the user belongs to. Only when there is no such role does the organisation's default
  role apply: the default is a fallback for users nobody gave a role, not a floor, so a group
  mapped to Viewer makes its members Viewers even where the default is Editor.
- Two candidate roles of equal rank (the services refuse creating them, but stored data may
  disagree) resolve to the one with the smaller key, so the result never depends on load order.
- Effective access groups are the union of the access groups granted by matching mappings.
- Direct role names that name no role are ignored here; the service refuses them on input.

Case-insensitive means ``str.lower`` on both sides. The store's unique indexes fold with the
database's ``lower()``, which differs from it on a few letters ("İ", a final sigma); the services
pick the users to recompute by this rule too (``services.access._members_matching``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

MatchKind = Literal["name", "prefix", "external_id"]
MATCH_KINDS: tuple[MatchKind, ...] = ("name", "prefix", "external_id")


def match_kind(text: str) -> MatchKind:
    """``text`` as a match kind; ValueError for anything else."""
    for kind in MATCH_KINDS:
        if text == kind:
            return kind
    raise ValueError(f"unknown mapping kind {text!r}; expected one of {', '.join(MATCH_KINDS)}")


@dataclass(frozen=True)
class Role:
    key: int
    name: str
    rank: int
    is_admin: bool = False


@dataclass(frozen=True)
class GroupRef:
    """What a mapping can see of an IdP group."""

    display_name: str
    external_id: str | None = None


@dataclass(frozen=True)
class GroupMapping:
    """A group mapping: which groups it matches and what it grants (exactly one of the two)."""

    kind: MatchKind
    value: str
    role_key: int | None = None
    access_group_key: int | None = None


def mapping_matches(mapping: GroupMapping, display_name: str, external_id: str | None) -> bool:
    """Whether ``mapping`` applies to a group with this displayName and externalId."""
    if mapping.kind == "name":
        return display_name.lower() == mapping.value.lower()
    if mapping.kind == "prefix":
        return display_name.lower().startswith(mapping.value.lower())
    if mapping.kind == "external_id":
        return external_id is not None and external_id == mapping.value
    raise ValueError(f"unknown mapping kind {mapping.kind!r}")


def _higher(candidate: Role, best: Role | None) -> bool:
    if best is None:
        return True
    return (candidate.rank, -candidate.key) > (best.rank, -best.key)


def resolve(
    direct_role_names: Iterable[str],
    groups: Iterable[GroupRef],
    mappings: Iterable[GroupMapping],
    roles: Mapping[int, Role],
    default_role: Role | None,
) -> tuple[Role | None, frozenset[int]]:
    """The effective role (or None) and the keys of the effective access groups of one user.

    ``roles`` holds every role of the organisation by key; mappings granting a key not in it
    (deleted concurrently) grant nothing.
    """
    by_name = {role.name.lower(): role for role in roles.values()}
    best: Role | None = None
    for name in direct_role_names:
        role = by_name.get(name.lower())
        if role is not None and _higher(role, best):
            best = role
    access: set[int] = set()
    group_list = list(groups)
    for mapping in mappings:
        if not any(mapping_matches(mapping, g.display_name, g.external_id) for g in group_list):
            continue
        if mapping.role_key is not None:
            role = roles.get(mapping.role_key)
            if role is not None and _higher(role, best):
                best = role
        if mapping.access_group_key is not None:
            access.add(mapping.access_group_key)
    return (best if best is not None else default_role), frozenset(access)
