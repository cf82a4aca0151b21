"""A User as a table row (``scim.columns``): columns from the schemas, and what a row's cells do
to a stored document."""

from __future__ import annotations

import pytest

from scim_server.scim.columns import (
    CellError,
    apply_row,
    safe_cell,
    split_values,
    to_row,
    unsafe_cell,
    user_columns,
)
from scim_server.scim.schema import CORE_USER, ENTERPRISE_USER, default_registry

COLUMNS = user_columns(default_registry().resource_type("User"))
BY_HEADER = {column.header: column for column in COLUMNS}
STORED = {
    "schemas": [CORE_USER, ENTERPRISE_USER],
    "userName": "a@acme.com",
    "active": True,
    "name": {"givenName": "A", "familyName": "B"},
    "emails": [
        {"value": "home@example.com", "type": "home"},
        {"value": "a@acme.com", "type": "work", "primary": True},
    ],
    ENTERPRISE_USER: {"department": "Sales", "manager": {"value": "m-1"}},
}


def test_columns_follow_the_schemas() -> None:
    assert BY_HEADER["active"].type == "boolean"
    assert BY_HEADER["emails"].multi_valued
    assert BY_HEADER["emails"].writable
    assert not BY_HEADER["groups"].writable  # readOnly in the schema
    assert not BY_HEADER["manager.displayName"].writable  # readOnly sub-attribute
    assert BY_HEADER["department"].schema == ENTERPRISE_USER
    assert "manager.$ref" not in BY_HEADER


def test_a_row_lists_the_primary_first_and_read_only_lists_by_display() -> None:
    doc = {**STORED, "groups": [{"value": "g-1", "display": "Sales team"}, {"value": "g-2"}]}
    row = dict(zip([c.header for c in COLUMNS], to_row(doc, COLUMNS, CORE_USER), strict=True))
    assert row["emails"] == "a@acme.com;home@example.com"
    assert row["groups"] == "Sales team;g-2"
    assert (row["active"], row["department"], row["title"]) == ("true", "Sales", "")


def test_cells_the_file_does_not_have_change_nothing() -> None:
    assert apply_row(STORED, COLUMNS, {"userName": "a@acme.com"}, CORE_USER) == STORED


def test_the_same_values_keep_the_stored_entries() -> None:
    cells = {"emails": "a@acme.com; home@example.com"}
    assert apply_row(STORED, COLUMNS, cells, CORE_USER) == STORED


def test_new_values_keep_the_entries_still_listed_and_the_first_is_primary() -> None:
    cells = {"emails": "home@example.com;new@acme.com"}
    assert apply_row(STORED, COLUMNS, cells, CORE_USER)["emails"] == [
        {"value": "home@example.com", "type": "home", "primary": True},
        {"value": "new@acme.com"},
    ]


def test_empty_cells_remove_except_active() -> None:
    cells = {"name.givenName": "", "name.familyName": "", "department": "", "manager.value": ""}
    cells |= {"active": "", "emails": ""}
    changed = apply_row(STORED, COLUMNS, cells, CORE_USER)
    assert "name" not in changed
    assert "emails" not in changed
    assert ENTERPRISE_USER not in changed  # an extension left empty is no extension
    assert changed["active"] is True


def test_read_only_columns_are_ignored() -> None:
    cells = {"status": "active", "groups": "Admins", "manager.displayName": "Boss", "id": "x"}
    assert apply_row(STORED, COLUMNS, cells, CORE_USER) == STORED


def test_booleans_are_true_or_false_in_any_case() -> None:
    assert apply_row(STORED, COLUMNS, {"active": " False"}, CORE_USER)["active"] is False


@pytest.mark.parametrize("text", ["yes", "1", "0"])
def test_other_booleans_are_refused(text: str) -> None:
    with pytest.raises(CellError, match=f'column "active": {text!r} is not true or false'):
        apply_row(STORED, COLUMNS, {"active": text}, CORE_USER)


def test_list_values_escape_the_separator() -> None:
    doc = {**STORED, "entitlements": [{"value": "Sales; EMEA", "primary": True}, {"value": "a\\b"}]}
    row = dict(zip([c.header for c in COLUMNS], to_row(doc, COLUMNS, CORE_USER), strict=True))
    assert row["entitlements"] == "Sales\\; EMEA;a\\\\b"
    assert split_values(row["entitlements"]) == ["Sales; EMEA", "a\\b"]
    assert apply_row(doc, COLUMNS, {"entitlements": row["entitlements"]}, CORE_USER) == doc


@pytest.mark.parametrize("text", ["=1+2", "+33 1 23", "-x", "@SUM(A1)", "\tx"])
def test_formulas_are_quoted_and_unquoted(text: str) -> None:
    assert safe_cell(text) == "'" + text
    assert unsafe_cell(safe_cell(text)) == text
    assert safe_cell("plain") == "plain"
    assert unsafe_cell("'plain") == "'plain"  # a quote before anything else is the value's
