"""The unquoted-filter-value rule rewrites only what the strict grammar refuses."""

from __future__ import annotations

import pytest

from scim_server.scim.dialects import normalise_filter, parse_normalised_filter
from scim_server.scim.errors import InvalidFilter
from scim_server.scim.filter import parse_filter
from scim_server.scim.filter_ast import Expr

CASES = [
    ("externalId eq jyoung", 'externalId eq "jyoung"'),
    ('userName eq "a b" and externalId eq x-1', 'userName eq "a b" and externalId eq "x-1"'),
    ("emails[type eq work].value eq a@b.c", 'emails[type eq "work"].value eq "a@b.c"'),
    # valid filters are never touched
    ("count gt 5", "count gt 5"),
    ("active eq true", "active eq true"),
    ('userName eq "jyoung"', 'userName eq "jyoung"'),
    ('title eq "eq x"', 'title eq "eq x"'),
    # nothing sensible to rewrite: left for the parser to refuse
    ("x eq", "x eq"),
    ('userName eq "unterminated', 'userName eq "unterminated'),
]


@pytest.mark.parametrize(("given", "expected"), CASES)
def test_normalise_filter(given: str, expected: str) -> None:
    assert normalise_filter(given) == expected


@pytest.mark.parametrize(("given", "expected"), CASES)
def test_parse_normalised_filter_parses_what_normalise_filter_leaves(
    given: str, expected: str
) -> None:
    """The list endpoints parse once; the answer, or the refusal of the filter as sent, is the
    same as normalising and then parsing."""
    try:
        wanted: Expr | str = parse_filter(expected)
    except InvalidFilter as refusal:
        wanted = refusal.detail
    try:
        got: Expr | str = parse_normalised_filter(given)
    except InvalidFilter as refusal:
        got = refusal.detail
    assert got == wanted
