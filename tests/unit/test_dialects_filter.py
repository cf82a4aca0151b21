"""The unquoted-filter-value rule rewrites only what the strict grammar refuses."""

from __future__ import annotations

import pytest

from scim_server.scim.dialects import normalise_filter


@pytest.mark.parametrize(
    ("given", "expected"),
    [
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
    ],
)
def test_normalise_filter(given: str, expected: str) -> None:
    assert normalise_filter(given) == expected
