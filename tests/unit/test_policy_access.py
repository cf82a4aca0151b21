"""Effective role and access groups (DESIGN §5.2): the pure rules of policy.access."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scim_server.policy.access import (
    MATCH_KINDS,
    GroupMapping,
    GroupRef,
    Role,
    mapping_matches,
    match_kind,
    resolve,
)

ADMIN = Role(1, "Administrator", 100, is_admin=True)
EDITOR = Role(2, "Editor", 40)
COLLABORATOR = Role(3, "Collaborator", 30)
UPDATER = Role(4, "Campaign Status Updater", 20)
VIEWER = Role(5, "Viewer", 10)
ROLES = {role.key: role for role in (ADMIN, EDITOR, COLLABORATOR, UPDATER, VIEWER)}


def by_name(value: str, *, role: Role | None = None, group: int | None = None) -> GroupMapping:
    return GroupMapping("name", value, role.key if role else None, group)


def by_prefix(value: str, *, role: Role | None = None, group: int | None = None) -> GroupMapping:
    return GroupMapping("prefix", value, role.key if role else None, group)


def by_external_id(
    value: str, *, role: Role | None = None, group: int | None = None
) -> GroupMapping:
    return GroupMapping("external_id", value, role.key if role else None, group)


# -- matching --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mapping", "display_name", "external_id", "expected"),
    [
        (by_name("Engineering"), "Engineering", None, True),
        (by_name("Engineering"), "ENGINEERING", None, True),
        (by_name("engineering"), "Engineering", "x", True),
        (by_name("Engineering"), "Engineering EU", None, False),
        (by_name("Engineering"), "Engineerin", None, False),
        (by_name("Engineering"), " Engineering", None, False),
        (by_name("Ärzte"), "ÄRZTE", None, True),  # case folds beyond ASCII, as the store's lower()
        (by_prefix("Eng"), "Engineering", None, True),
        (by_prefix("eng"), "ENGINEERING EU", None, True),
        (by_prefix("Eng"), "Eng", None, True),
        (by_prefix("Eng"), "En", None, False),
        (by_prefix("Eng"), "Sales Eng", None, False),
        (by_prefix("app-"), "app-campaigns-edit", None, True),
        (by_prefix("100%"), "100% club", None, True),  # no wildcard meaning
        (by_prefix("100%"), "1000 club", None, False),
        (by_prefix("a_b"), "axb", None, False),
        (by_external_id("00g1"), "anything", "00g1", True),
        (by_external_id("00g1"), "00g1", None, False),  # not the name
        (by_external_id("00g1"), "x", "00G1", False),  # exact
        (by_external_id("00g1"), "x", "00g12", False),
        (by_external_id("00g1"), "x", None, False),
    ],
)
def test_mapping_matches(
    mapping: GroupMapping, display_name: str, external_id: str | None, expected: bool
) -> None:
    assert mapping_matches(mapping, display_name, external_id) is expected


def test_unknown_mapping_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown mapping kind"):
        mapping_matches(GroupMapping("regex", ".*"), "x", None)  # type: ignore[arg-type]


def test_match_kind_parses_known_kinds_only() -> None:
    assert [match_kind(k) for k in MATCH_KINDS] == ["name", "prefix", "external_id"]
    with pytest.raises(ValueError, match="expected one of name, prefix, external_id"):
        match_kind("Name")


# -- resolution ------------------------------------------------------------------------------


def test_no_roles_and_no_groups_gives_the_default_role() -> None:
    assert resolve([], [], [], ROLES, VIEWER) == (VIEWER, frozenset())


def test_no_roles_and_no_default_gives_nothing() -> None:
    assert resolve([], [], [], ROLES, None) == (None, frozenset())


def test_direct_role_by_name_case_insensitive() -> None:
    assert resolve(["editor"], [], [], ROLES, VIEWER)[0] == EDITOR
    assert resolve(["CAMPAIGN STATUS UPDATER"], [], [], ROLES, None)[0] == UPDATER


def test_unknown_direct_role_names_are_ignored() -> None:
    assert resolve(["Owner", ""], [], [], ROLES, VIEWER)[0] == VIEWER
    assert resolve(["Owner", "Collaborator"], [], [], ROLES, None)[0] == COLLABORATOR


def test_highest_rank_wins_among_direct_roles() -> None:
    assert resolve(["Viewer", "Editor", "Collaborator"], [], [], ROLES, None)[0] == EDITOR


def test_group_mapped_to_a_role_grants_it() -> None:
    groups = [GroupRef("Engineering", "00g1")]
    mappings = [by_name("engineering", role=EDITOR)]
    assert resolve([], groups, mappings, ROLES, VIEWER) == (EDITOR, frozenset())


def test_an_unmapped_group_grants_nothing() -> None:
    groups = [GroupRef("Sales")]
    mappings = [by_name("Engineering", role=EDITOR)]
    assert resolve([], groups, mappings, ROLES, VIEWER) == (VIEWER, frozenset())


def test_two_role_grants_resolve_to_the_higher_rank() -> None:
    groups = [GroupRef("Engineering"), GroupRef("Admins", "00gA")]
    mappings = [by_name("Engineering", role=COLLABORATOR), by_external_id("00gA", role=ADMIN)]
    assert resolve(["Viewer"], groups, mappings, ROLES, None)[0] == ADMIN
    assert resolve(["Editor"], groups[:1], mappings, ROLES, None)[0] == EDITOR


def test_direct_and_group_roles_compete_on_rank() -> None:
    groups = [GroupRef("Editors")]
    mappings = [by_name("Editors", role=EDITOR)]
    assert resolve(["Viewer"], groups, mappings, ROLES, None)[0] == EDITOR
    assert resolve(["Administrator"], groups, mappings, ROLES, None)[0] == ADMIN


def test_the_default_is_a_fallback_not_a_floor() -> None:
    # a group mapped to Viewer makes its members Viewers, even where the default is Editor
    groups = [GroupRef("Readers")]
    mappings = [by_name("Readers", role=VIEWER)]
    assert resolve([], groups, mappings, ROLES, EDITOR)[0] == VIEWER


def test_access_groups_are_the_union_of_matching_grants() -> None:
    groups = [GroupRef("Engineering", "00g1"), GroupRef("Eng EU")]
    mappings = [
        by_name("Engineering", group=10),
        by_prefix("eng", group=11),
        by_external_id("00g1", group=12),
        by_external_id("00g9", group=13),
        by_name("Sales", group=14),
        by_prefix("Eng", group=10),  # the same access group twice
    ]
    role, access = resolve([], groups, mappings, ROLES, None)
    assert role is None
    assert access == frozenset({10, 11, 12})


def test_access_group_grants_do_not_change_the_role() -> None:
    groups = [GroupRef("Engineering")]
    mappings = [by_name("Engineering", group=10)]
    assert resolve([], groups, mappings, ROLES, VIEWER) == (VIEWER, frozenset({10}))


def test_a_mapping_to_a_missing_role_grants_nothing() -> None:
    groups = [GroupRef("Engineering")]
    mappings = [GroupMapping("name", "Engineering", 99, None)]
    assert resolve([], groups, mappings, ROLES, VIEWER)[0] == VIEWER


def test_equal_ranks_resolve_to_the_smaller_key_whatever_the_order() -> None:
    first, second = Role(7, "Reviewer", 25), Role(8, "Auditor", 25)
    roles = {**ROLES, 7: first, 8: second}
    groups = [GroupRef("A"), GroupRef("B")]
    forward = [by_name("A", role=first), by_name("B", role=second)]
    assert resolve([], groups, forward, roles, None)[0] == first
    assert resolve([], groups, list(reversed(forward)), roles, None)[0] == first
    assert resolve(["Auditor", "Reviewer"], [], [], roles, None)[0] == first


def test_inputs_may_be_one_shot_iterables() -> None:
    groups = iter([GroupRef("A"), GroupRef("B")])
    mappings = iter([by_name("B", role=EDITOR), by_name("A", group=3)])
    assert resolve(iter(["Viewer"]), groups, mappings, ROLES, None) == (EDITOR, frozenset({3}))


# -- properties ------------------------------------------------------------------------------

names = st.sampled_from(["Eng", "eng", "Engineering", "Sales", "Sales EU", "Admins", "x"])
external_ids = st.one_of(st.none(), st.sampled_from(["00g1", "00g2", "00G1"]))
group_refs = st.builds(GroupRef, names, external_ids)
roles_strategy = st.lists(
    st.builds(Role, st.integers(1, 20), st.sampled_from(["A", "B", "C", "D"]), st.integers(0, 5)),
    max_size=4,
    unique_by=(lambda role: role.key, lambda role: role.name),  # as the store guarantees
).map(lambda roles: {role.key: role for role in roles})


@st.composite
def mappings_for(draw: st.DrawFn, role_keys: list[int]) -> GroupMapping:
    kind = draw(st.sampled_from(MATCH_KINDS))
    value = draw(names if kind != "external_id" else st.sampled_from(["00g1", "00g2"]))
    if role_keys and draw(st.booleans()):
        return GroupMapping(kind, value, draw(st.sampled_from(role_keys)), None)
    return GroupMapping(kind, value, None, draw(st.integers(1, 5)))


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[list[str], list[GroupRef], list[GroupMapping], dict[int, Role], Role | None]:
    roles = draw(roles_strategy)
    keys = sorted(roles)
    direct = draw(st.lists(st.sampled_from(["A", "b", "C", "nope"]), max_size=3))
    groups = draw(st.lists(group_refs, max_size=4))
    mappings = draw(st.lists(mappings_for(keys), max_size=6))
    default = (
        draw(st.one_of(st.none(), st.sampled_from([roles[k] for k in keys]))) if keys else None
    )
    return direct, groups, mappings, roles, default


def candidates(
    direct: list[str], groups: list[GroupRef], mappings: list[GroupMapping], roles: dict[int, Role]
) -> list[Role]:
    """Every role the user is given, by name or by a matching mapping (the spec, spelled out)."""
    found = [r for r in roles.values() if r.name.lower() in {n.lower() for n in direct}]
    for m in mappings:
        if m.role_key in roles and any(
            mapping_matches(m, g.display_name, g.external_id) for g in groups
        ):
            found.append(roles[m.role_key])
    return found


@given(scenarios())
def test_result_is_the_max_rank_candidate_else_the_default(
    scenario: tuple[list[str], list[GroupRef], list[GroupMapping], dict[int, Role], Role | None],
) -> None:
    direct, groups, mappings, roles, default = scenario
    role, _ = resolve(direct, groups, mappings, roles, default)
    given_roles = candidates(direct, groups, mappings, roles)
    if not given_roles:
        assert role == default
    else:
        assert role in given_roles
        assert role is not None
        assert role.rank == max(r.rank for r in given_roles)


@given(scenarios())
def test_access_groups_are_exactly_the_matching_grants(
    scenario: tuple[list[str], list[GroupRef], list[GroupMapping], dict[int, Role], Role | None],
) -> None:
    direct, groups, mappings, roles, default = scenario
    _, access = resolve(direct, groups, mappings, roles, default)
    assert access == {
        m.access_group_key
        for m in mappings
        if m.access_group_key is not None
        and any(mapping_matches(m, g.display_name, g.external_id) for g in groups)
    }


@given(scenarios(), st.data())
def test_adding_a_grant_never_lowers_the_rank(
    scenario: tuple[list[str], list[GroupRef], list[GroupMapping], dict[int, Role], Role | None],
    data: st.DataObject,
) -> None:
    direct, groups, mappings, roles, default = scenario
    before, access_before = resolve(direct, groups, mappings, roles, default)
    keys = sorted(roles)
    extra = data.draw(
        st.one_of(
            st.builds(lambda name: ("direct", name), st.sampled_from(["A", "B", "C", "D"])),
            st.builds(lambda ref: ("group", ref), group_refs),
            st.builds(lambda m: ("mapping", m), mappings_for(keys)),
        )
    )
    kind, value = extra
    grown = (
        [*direct, value] if kind == "direct" else direct,
        [*groups, value] if kind == "group" else groups,
        [*mappings, value] if kind == "mapping" else mappings,
    )
    after, access_after = resolve(*grown, roles, default)
    assert access_after >= access_before  # access groups only accumulate
    if candidates(direct, groups, mappings, roles) or default is None:
        # once the user has been given a role (or there is no default to fall back on), a
        # further grant can only keep or raise it
        rank_before = before.rank if before else -1
        assert after is not None or before is None
        assert (after.rank if after else -1) >= rank_before


@given(scenarios(), st.randoms())
def test_order_of_inputs_does_not_matter(
    scenario: tuple[list[str], list[GroupRef], list[GroupMapping], dict[int, Role], Role | None],
    rng: object,
) -> None:
    direct, groups, mappings, roles, default = scenario
    shuffle = rng.shuffle  # type: ignore[attr-defined]
    d, g, m = list(direct), list(groups), list(mappings)
    shuffle(d)
    shuffle(g)
    shuffle(m)
    assert resolve(d, g, m, roles, default) == resolve(direct, groups, mappings, roles, default)
