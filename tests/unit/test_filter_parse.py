"""scim.filter: filter and PATCH path text -> filter_ast (RFC 7644 §3.4.2.2, §3.5.2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scim_server.scim import filter as filter_module
from scim_server.scim.errors import InvalidFilter, InvalidPath
from scim_server.scim.filter import (
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_FILTER_TERMS,
    parse_filter,
    parse_patch_path,
)
from scim_server.scim.filter_ast import (
    And,
    AttrPath,
    Compare,
    Not,
    Or,
    PatchPath,
    Present,
    ValuePath,
)

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def P(attr: str, sub: str | None = None, uri: str | None = None) -> AttrPath:
    return AttrPath(attr, sub, uri)


def eq(attr: str, value: object, sub: str | None = None) -> Compare:
    return Compare(P(attr, sub), "eq", value)  # type: ignore[arg-type]


# --- RFC 7644 §3.4.2.2 Figure 2, verbatim -------------------------------------------------------

RFC_EXAMPLES = [
    ('userName eq "bjensen"', Compare(P("userName"), "eq", "bjensen")),
    ('name.familyName co "O\'Malley"', Compare(P("name", "familyName"), "co", "O'Malley")),
    ('userName sw "J"', Compare(P("userName"), "sw", "J")),
    (f'{CORE}:userName sw "J"', Compare(P("userName", uri=CORE), "sw", "J")),
    ("title pr", Present(P("title"))),
    (
        'meta.lastModified gt "2011-05-13T04:42:34Z"',
        Compare(P("meta", "lastModified"), "gt", "2011-05-13T04:42:34Z"),
    ),
    (
        'meta.lastModified ge "2011-05-13T04:42:34Z"',
        Compare(P("meta", "lastModified"), "ge", "2011-05-13T04:42:34Z"),
    ),
    (
        'meta.lastModified lt "2011-05-13T04:42:34Z"',
        Compare(P("meta", "lastModified"), "lt", "2011-05-13T04:42:34Z"),
    ),
    (
        'meta.lastModified le "2011-05-13T04:42:34Z"',
        Compare(P("meta", "lastModified"), "le", "2011-05-13T04:42:34Z"),
    ),
    (
        'title pr and userType eq "Employee"',
        And(Present(P("title")), eq("userType", "Employee")),
    ),
    (
        'title pr or userType eq "Intern"',
        Or(Present(P("title")), eq("userType", "Intern")),
    ),
    (
        f'schemas eq "{ENTERPRISE}"',
        eq("schemas", ENTERPRISE),
    ),
    (
        'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
        And(
            eq("userType", "Employee"),
            Or(
                Compare(P("emails"), "co", "example.com"),
                Compare(P("emails", "value"), "co", "example.org"),
            ),
        ),
    ),
    (
        'userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")',
        And(
            Compare(P("userType"), "ne", "Employee"),
            Not(
                Or(
                    Compare(P("emails"), "co", "example.com"),
                    Compare(P("emails", "value"), "co", "example.org"),
                )
            ),
        ),
    ),
    (
        'userType eq "Employee" and (emails.type eq "work")',
        And(eq("userType", "Employee"), eq("emails", "work", sub="type")),
    ),
    (
        'userType eq "Employee" and emails[type eq "work" and value co "@example.com"]',
        And(
            eq("userType", "Employee"),
            ValuePath(
                P("emails"),
                And(eq("type", "work"), Compare(P("value"), "co", "@example.com")),
            ),
        ),
    ),
    (
        'emails[type eq "work" and value co "@example.com"] or '
        'ims[type eq "xmpp" and value co "@foo.com"]',
        Or(
            ValuePath(
                P("emails"), And(eq("type", "work"), Compare(P("value"), "co", "@example.com"))
            ),
            ValuePath(P("ims"), And(eq("type", "xmpp"), Compare(P("value"), "co", "@foo.com"))),
        ),
    ),
]


@pytest.mark.parametrize(("text", "expected"), RFC_EXAMPLES, ids=[t for t, _ in RFC_EXAMPLES])
def test_rfc_examples(text: str, expected: object) -> None:
    assert parse_filter(text) == expected


# --- IdP request shapes (../shared/idp-corpus) --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Okta: lookup by userName; group lookup by displayName
        (
            'userName eq "test.user.1a2b@okta.local"',
            eq("userName", "test.user.1a2b@okta.local"),
        ),
        ('displayName eq "Test SCIMv2 1a2b"', eq("displayName", "Test SCIMv2 1a2b")),
        # Entra: lookup, and the value-path-then-subattribute form on a uniqueness attribute
        ('userName eq "Test_User_1a2b"', eq("userName", "Test_User_1a2b")),
        (
            'emails[type eq "work"].value eq "Test_User_1a2b@testuser.com"',
            ValuePath(
                P("emails"),
                And(eq("type", "work"), eq("value", "Test_User_1a2b@testuser.com")),
            ),
        ),
        # Entra "test connection": a random GUID
        (
            'id eq "5171a35d82074e068ce2aba3f4a2b2cb"',
            eq("id", "5171a35d82074e068ce2aba3f4a2b2cb"),
        ),
        ('externalId eq "jyoung"', eq("externalId", "jyoung")),
    ],
)
def test_idp_filters(text: str, expected: object) -> None:
    assert parse_filter(text) == expected


# --- paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (f'{ENTERPRISE}:department eq "x"', P("department", uri=ENTERPRISE)),
        (f'{ENTERPRISE}:manager.value eq "x"', P("manager", "value", ENTERPRISE)),
        (f'{CORE}:name.familyName eq "x"', P("name", "familyName", CORE)),
        ('meta.lastModified eq "x"', P("meta", "lastModified")),
        ('members.$ref eq "x"', P("members", "$ref")),
        ('a-b_c9 eq "x"', P("a-b_c9")),
        # names are kept as written: resolving them is the schema's job
        ('USERNAME eq "x"', P("USERNAME")),
        ('noSuchAttribute eq "x"', P("noSuchAttribute")),
    ],
)
def test_attribute_paths_are_kept_as_written(text: str, path: AttrPath) -> None:
    expr = parse_filter(text)
    assert isinstance(expr, Compare)
    assert expr.path == path
    assert expr.value == "x"


def test_str_of_a_path_is_the_text_as_written() -> None:
    expr = parse_filter(f'{ENTERPRISE}:manager.value eq "x"')
    assert isinstance(expr, Compare)
    assert str(expr.path) == f"{ENTERPRISE}:manager.value"


@pytest.mark.parametrize(
    "name",
    [
        "nullable",
        "trueName",
        "falsehood",
        "null1",
        "true_x",
        "false-y",
        "notes",
        "order",
        "andrew",
        "prefix",
        "equal",
        "coName",
        "swap",
        "ewe",
        "gtx",
        "lean",
    ],
)
def test_names_beginning_with_keywords_are_names(name: str) -> None:
    assert parse_filter(f'{name} eq "v"') == eq(name, "v")
    assert parse_filter(f"{name} pr") == Present(P(name))
    assert parse_filter(f"x eq 1 and {name} pr") == And(eq("x", 1), Present(P(name)))


# --- operators -----------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])
@pytest.mark.parametrize("case", [str.lower, str.upper, str.title, lambda s: s[0] + s[1].upper()])
def test_comparison_operators_in_any_case(op: str, case: object) -> None:
    written = case(op)  # type: ignore[operator]
    assert parse_filter(f'title {written} "x"') == Compare(P("title"), op, "x")


@pytest.mark.parametrize("written", ["pr", "PR", "Pr", "pR"])
def test_present_in_any_case(written: str) -> None:
    assert parse_filter(f"title {written}") == Present(P("title"))


@pytest.mark.parametrize("written", ["and", "AND", "And", "aNd"])
def test_and_in_any_case(written: str) -> None:
    assert parse_filter(f"a pr {written} b pr") == And(Present(P("a")), Present(P("b")))


@pytest.mark.parametrize("written", ["or", "OR", "Or", "oR"])
def test_or_in_any_case(written: str) -> None:
    assert parse_filter(f"a pr {written} b pr") == Or(Present(P("a")), Present(P("b")))


@pytest.mark.parametrize("written", ["not", "NOT", "Not", "nOt"])
def test_not_in_any_case(written: str) -> None:
    assert parse_filter(f"{written} (a pr)") == Not(Present(P("a")))


# --- precedence: not > and > or (RFC 7644 §3.4.2.2) ---------------------------------------------

A, B, C, D = (Present(P(n)) for n in "abcd")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a pr or b pr and c pr", Or(A, And(B, C))),
        ("a pr and b pr or c pr", Or(And(A, B), C)),
        ("a pr or b pr and c pr or d pr", Or(Or(A, And(B, C)), D)),
        ("a pr and b pr or c pr and d pr", Or(And(A, B), And(C, D))),
        ("(a pr or b pr) and c pr", And(Or(A, B), C)),
        ("a pr and (b pr or c pr)", And(A, Or(B, C))),
        ("a pr and b pr and c pr", And(And(A, B), C)),
        ("a pr or b pr or c pr", Or(Or(A, B), C)),
        ("not (a pr) and b pr", And(Not(A), B)),
        ("not (a pr) or b pr and c pr", Or(Not(A), And(B, C))),
        ("not (a pr or b pr)", Not(Or(A, B))),
        ("not (not (a pr))", Not(Not(A))),
        ("((a pr))", A),
        ("(a pr) or (b pr)", Or(A, B)),
    ],
)
def test_precedence(text: str, expected: object) -> None:
    assert parse_filter(text) == expected


def test_precedence_inside_a_value_filter() -> None:
    got = parse_filter('emails[type eq "a" or type eq "b" and value co "x"]')
    assert got == ValuePath(
        P("emails"),
        Or(eq("type", "a"), And(eq("type", "b"), Compare(P("value"), "co", "x"))),
    )


def test_not_inside_a_value_filter() -> None:
    got = parse_filter('emails[not (type eq "work")]')
    assert got == ValuePath(P("emails"), Not(eq("type", "work")))


# --- literals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("true", True),
        ("false", False),
        ("null", None),
        ("TRUE", True),
        ("False", False),
        ("Null", None),
        ('"true"', "true"),
        ('"false"', "false"),
        ('"null"', "null"),
        ("0", 0),
        ("7", 7),
        ("42", 42),
        ("1234567890123456789012345678901234567890", 1234567890123456789012345678901234567890),
        ("-1", -1),
        ("-0", 0),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        ("2e3", 2000.0),
        ("2E+3", 2000.0),
        ("25e-1", 2.5),
        ("1.0", 1.0),
        ('""', ""),
        ('"a b"', "a b"),
        ('"O\'Malley"', "O'Malley"),
        (r'"say \"hi\""', 'say "hi"'),
        (r'"back\\slash"', "back\\slash"),
        (r'"trailing\\"', "trailing\\"),
        (r'"\/"', "/"),
        (r'"tab\there"', "tab\there"),
        (r'"line\nbreak"', "line\nbreak"),
        (r'"caf\u00e9"', "café"),
        (r'"\ud83d\ude00"', "\U0001f600"),
        ('"café"', "café"),
        ('"a]b[c)d(e"', "a]b[c)d(e"),
        ('"x and y or not (z)"', "x and y or not (z)"),
        ('"urn:a:b:c"', "urn:a:b:c"),
    ],
)
def test_literals_are_typed_json(literal: str, value: object) -> None:
    expr = parse_filter(f"x eq {literal}")
    assert isinstance(expr, Compare)
    assert expr.value == value
    assert type(expr.value) is type(value)


def test_true_and_the_string_true_differ() -> None:
    assert parse_filter("active eq true") != parse_filter('active eq "true"')


def test_int_and_float_literals_keep_their_type() -> None:
    int_expr = parse_filter("x eq 1")
    float_expr = parse_filter("x eq 1.0")
    assert isinstance(int_expr, Compare)
    assert isinstance(float_expr, Compare)
    assert type(int_expr.value) is int
    assert type(float_expr.value) is float


def test_whitespace_is_flexible() -> None:
    assert parse_filter('  userName   eq\t"x"  ') == eq("userName", "x")
    assert parse_filter('(userName eq "x")and(title pr)') == And(
        eq("userName", "x"), Present(P("title"))
    )


# --- value paths ---------------------------------------------------------------------------------


def test_value_path_alone() -> None:
    assert parse_filter('members[value eq "2819c223"]') == ValuePath(
        P("members"), eq("value", "2819c223")
    )


def test_value_path_with_uri() -> None:
    got = parse_filter(f'{CORE}:emails[type eq "work"]')
    assert got == ValuePath(P("emails", uri=CORE), eq("type", "work"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'emails[type eq "work"].value eq "x"',
            ValuePath(P("emails"), And(eq("type", "work"), eq("value", "x"))),
        ),
        (
            'emails[type eq "work"].value co "@x.com"',
            ValuePath(P("emails"), And(eq("type", "work"), Compare(P("value"), "co", "@x.com"))),
        ),
        (
            'emails[type eq "work"].value pr',
            ValuePath(P("emails"), And(eq("type", "work"), Present(P("value")))),
        ),
        (
            'addresses[type eq "work" or primary eq true].locality eq "Hollywood"',
            ValuePath(
                P("addresses"),
                And(Or(eq("type", "work"), eq("primary", True)), eq("locality", "Hollywood")),
            ),
        ),
        (
            'emails[type eq "work"].value eq "x" and active eq true',
            And(
                ValuePath(P("emails"), And(eq("type", "work"), eq("value", "x"))),
                eq("active", True),
            ),
        ),
    ],
)
def test_entra_value_path_with_sub_attribute_is_rewritten(text: str, expected: object) -> None:
    assert parse_filter(text) == expected


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "in_detail"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("userName", "ends too early"),
        ("userName eq", "'eq' needs a value"),
        ('userName eq "x" and', "ends too early"),
        ('userName pr "x"', "'pr' takes no value"),
        ('userName regex "x"', "unknown operator 'regex'"),
        ('userName "x"', "missing operator"),
        ('userName eq "x" title pr', "unexpected 'title'"),
        ('userName eq "x")', "unexpected ')'"),
        ('(userName eq "x"', "ends too early"),
        ('userName eq "x', "unterminated string"),
        ('userName eq "bad \\q escape"', "invalid string"),
        ("userName eq 'single'", "unexpected character"),
        ("userName eq 01", "invalid number '01'"),
        ("userName eq 1.", "invalid number"),
        ("userName eq 12abc", "invalid number '12abc'"),
        ("userName eq 1e999", "out of range"),
        ('userName eq "x" & title pr', "unexpected character '&'"),
        ("not title pr", "unexpected"),
        ('emails[type eq "work"', "ends too early"),
        ('emails[type eq "work"] eq "x"', "must be followed by '.subAttribute'"),
        ('emails.value[type eq "work"]', "not to 'emails.value'"),
        ('emails[type[value eq "x"].value eq "y"]', "cannot be nested"),
        ('emails[value.sub eq "x"]', "must be a sub-attribute name"),
        (f'emails[{CORE}:type eq "x"]', "must be a sub-attribute name"),
        ("emails[]", "unexpected ']'"),
        ('title eq "x" and and title pr', "unexpected 'and'"),
        ("eq pr", "unexpected 'eq'"),
        ("true eq true", "unexpected 'true'"),
    ],
)
def test_invalid_filters(text: str, in_detail: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        parse_filter(text)
    assert in_detail in caught.value.detail
    assert caught.value.scim_type == "invalidFilter"
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "text",
    [
        "externalId eq jyoung",
        "userName eq bjensen@example.com",
        "externalId eq jyoung and title pr",
        "displayName eq Sales",
    ],
)
def test_unquoted_values_are_refused_for_now(text: str) -> None:
    """Entra sends unquoted values (DESIGN §4.1); until a dialect rule handles it, 400."""
    with pytest.raises(InvalidFilter):
        parse_filter(text)


def test_unquoted_value_detail_says_how_to_fix_it() -> None:
    with pytest.raises(InvalidFilter) as caught:
        parse_filter("externalId eq jyoung")
    assert "double quotes" in caught.value.detail
    assert '"jyoung"' in caught.value.detail


def test_detail_quotes_the_filter_and_the_position() -> None:
    with pytest.raises(InvalidFilter) as caught:
        parse_filter('userName eq "x" junk')
    assert "'userName eq \"x\" junk'" in caught.value.detail
    assert "character 17" in caught.value.detail


def test_maximum_length() -> None:
    padding = MAX_FILTER_LENGTH - len('userName eq ""')
    longest = 'userName eq "' + "a" * padding + '"'
    assert len(longest) == MAX_FILTER_LENGTH
    assert parse_filter(longest) == eq("userName", "a" * padding)
    with pytest.raises(InvalidFilter) as caught:
        parse_filter('userName eq "' + "a" * (padding + 1) + '"')
    assert str(MAX_FILTER_LENGTH) in caught.value.detail


def test_maximum_nesting() -> None:
    deepest = "(" * MAX_FILTER_DEPTH + "a pr" + ")" * MAX_FILTER_DEPTH
    assert parse_filter(deepest) == Present(P("a"))
    negated = "not (" * MAX_FILTER_DEPTH + "a pr" + ")" * MAX_FILTER_DEPTH
    assert isinstance(parse_filter(negated), Not)
    for text in [
        "(" * (MAX_FILTER_DEPTH + 1) + "a pr" + ")" * (MAX_FILTER_DEPTH + 1),
        "(" * 2000 + "a pr" + ")" * 2000,  # must not exhaust the stack
    ]:
        with pytest.raises(InvalidFilter) as caught:
            parse_filter(text)
        assert f"more than {MAX_FILTER_DEPTH} levels" in caught.value.detail


def test_maximum_number_of_comparisons() -> None:
    most = " or ".join(["a pr"] * MAX_FILTER_TERMS)
    assert isinstance(parse_filter(most), Or)
    with pytest.raises(InvalidFilter) as caught:
        parse_filter(most + " or b pr")
    assert f"more than {MAX_FILTER_TERMS} comparisons" in caught.value.detail


def test_a_lookup_of_many_ids_fits() -> None:
    ids = [f"{n:08d}-7f76-453a-919d-413861904646" for n in range(80)]
    text = " or ".join(f'id eq "{i}"' for i in ids)
    assert len(text) <= MAX_FILTER_LENGTH
    parse_filter(text)


def test_non_string_filter() -> None:
    with pytest.raises(InvalidFilter):
        parse_filter(42)  # type: ignore[arg-type]


# --- properties ----------------------------------------------------------------------------------


@given(
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00")), st.booleans()
)  # refused: NUL, half pairs
def test_any_string_round_trips_through_json_escaping(value: str, ascii_only: bool) -> None:
    text = f"userName eq {json.dumps(value, ensure_ascii=ascii_only)}"
    assert parse_filter(text) == eq("userName", value)


@given(st.integers())
def test_any_integer_parses(value: int) -> None:
    expr = parse_filter(f"x ge {value}")
    assert expr == Compare(P("x"), "ge", value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_finite_float_parses(value: float) -> None:
    expr = parse_filter(f"x lt {json.dumps(value)}")
    assert isinstance(expr, Compare)
    assert expr.value == value


NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True).filter(
    lambda n: (
        n.lower()
        not in {"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "and", "or", "not"}
        | {"true", "false", "null"}
    )
)


@given(NAMES, st.one_of(NAMES, st.none()))
def test_any_attribute_name_parses(name: str, sub: str | None) -> None:
    path = f"{name}.{sub}" if sub else name
    assert parse_filter(f'{path} sw "v"') == Compare(P(name, sub), "sw", "v")
    assert parse_patch_path(path) == PatchPath(P(name, sub))


@given(st.lists(NAMES, min_size=1, max_size=8), st.sampled_from(["and", "or"]))
def test_chains_are_left_associative(names: list[str], op: str) -> None:
    text = f" {op} ".join(f"{n} pr" for n in names)
    expected: object = Present(P(names[0]))
    for name in names[1:]:
        expected = (And if op == "and" else Or)(expected, Present(P(name)))  # type: ignore[arg-type]
    assert parse_filter(text) == expected


# --- templates: a filter parsed once per shape gives what a parse of the text gives ---------------


def _parsed_as_sent(text: str) -> object:
    """The parse of ``text`` without templates: the tree, or the refusal's detail."""
    try:
        return filter_module._convert(filter_module._parse_tree(text), inside=None)
    except filter_module._SyntaxProblem as problem:
        return f"invalid filter {filter_module._located(problem, text)}"


def _outcome(parse: Callable[[str], object], text: str) -> object:
    """What ``parse`` gives for ``text``: the tree, or the refusal's detail."""
    try:
        return parse(text)
    except (InvalidFilter, InvalidPath) as refusal:
        return refusal.detail


# Pieces of filters, valid and not, with strings that look like the grammar, escape, or break it.
_STRINGS = st.one_of(
    st.text(max_size=12).map(json.dumps),
    st.sampled_from(
        [
            '"a]b"',
            '"x eq \\"y\\""',
            '"\\u0000"',
            '"\\u00e9"',
            '"\\x"',  # an escape JSON refuses
            '"unterminated',
            '""',
            '"and or not ( ) [ ] pr"',
            '"\\\\"',
        ]
    ),
)
_PIECES = st.one_of(
    _STRINGS,
    st.sampled_from(
        (
            "userName|eq|ne|co|sw|gt|pr|and|or|not|(|)|[|]|emails|emails[type eq|].value|"
            "members[value eq|true|null|12|-1.5e3|name.givenName|x eq|.|1abc|"
            f"{ENTERPRISE}:employeeNumber"
        ).split("|")
    ),
)


@given(st.lists(_PIECES, min_size=1, max_size=9), st.sampled_from([" ", "", "  "]))
def test_a_template_parse_equals_the_parse_of_the_text(pieces: list[str], glue: str) -> None:
    text = glue.join(pieces)
    if not text.strip() or "\x00" in text:
        return
    assert _outcome(parse_filter, text) == _parsed_as_sent(text)


@pytest.mark.parametrize(
    "text",
    [
        'userName eq "bjensen"',
        'userName eq "a" or userName eq "b" and not (title pr)',
        'emails[type eq "work" and value co "@x"].value eq "y"',
        'members[value eq "a"] or displayName eq "]"',
        'userName eq "x" and externalId eq "x"',
        'meta.lastModified gt "2011-05-13T04:42:34Z" and active eq true',
    ],
)
def test_filters_of_one_shape_keep_their_own_values(text: str) -> None:
    first = parse_filter(text)
    assert first == _parsed_as_sent(text)
    # the same shape with other strings: each request gets its own values back
    changed = filter_module._STRING_LITERAL.sub(lambda m: json.dumps(m.group(0) + "!"), text)
    assert parse_filter(changed) == _parsed_as_sent(changed)
    assert parse_filter(changed) != first


_PATH_PIECES = st.one_of(
    _STRINGS,
    st.sampled_from(
        (
            f"members|members[value eq|emails[type eq|]|[|].value|.display|value|eq|and|or|"
            f"not|pr|(|)|.|name.givenName|{ENTERPRISE}:manager|{ENTERPRISE}:|true|12"
        ).split("|")
    ),
)


@given(st.lists(_PATH_PIECES, min_size=1, max_size=7), st.sampled_from([" ", ""]))
def test_a_template_path_parse_equals_the_parse_of_the_path(pieces: list[str], glue: str) -> None:
    text = glue.join(pieces)
    if not text.strip():
        return
    assert _outcome(parse_patch_path, text) == _outcome(filter_module._parsed_patch_path, text)


def test_value_filter_paths_of_one_shape_keep_their_own_values() -> None:
    for member in ("a", "b", "]", '\\"'):
        text = f'members[value eq "{member}"]'
        assert parse_patch_path(text) == PatchPath(
            P("members"), eq("value", json.loads(f'"{member}"'))
        )


# --- PATCH paths (RFC 7644 §3.5.2) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # RFC 7644 §3.5.2 Figure 8, verbatim
        ("members", PatchPath(P("members"))),
        ("name.familyName", PatchPath(P("name", "familyName"))),
        ('addresses[type eq "work"]', PatchPath(P("addresses"), eq("type", "work"))),
        (
            'members[value eq "2819c223-7f76-453a-919d-413861904646"]',
            PatchPath(P("members"), eq("value", "2819c223-7f76-453a-919d-413861904646")),
        ),
        (
            'members[value eq "2819c223-7f76-453a-919d-413861904646"].displayName',
            PatchPath(
                P("members"), eq("value", "2819c223-7f76-453a-919d-413861904646"), "displayName"
            ),
        ),
        # RFC 7644 §3.5.2.2 / §3.5.2.3 examples
        (
            'emails[type eq "work" and value ew "example.com"]',
            PatchPath(
                P("emails"), And(eq("type", "work"), Compare(P("value"), "ew", "example.com"))
            ),
        ),
        (
            'addresses[type eq "work"].streetAddress',
            PatchPath(P("addresses"), eq("type", "work"), "streetAddress"),
        ),
        # Entra
        ('emails[type eq "work"].value', PatchPath(P("emails"), eq("type", "work"), "value")),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            PatchPath(P("employeeNumber", uri=ENTERPRISE)),
        ),
        (f"{ENTERPRISE}:manager", PatchPath(P("manager", uri=ENTERPRISE))),
        (f"{ENTERPRISE}:manager.value", PatchPath(P("manager", "value", ENTERPRISE))),
        (f"{CORE}:name.givenName", PatchPath(P("name", "givenName", CORE))),
        # A bare extension URN: grammatically URI ":" ATTRNAME; the schema tells it apart.
        (
            ENTERPRISE,
            PatchPath(P("User", uri="urn:ietf:params:scim:schemas:extension:enterprise:2.0")),
        ),
        ("active", PatchPath(P("active"))),
        ("nullable", PatchPath(P("nullable"))),
        ('emails[value eq "]"]', PatchPath(P("emails"), eq("value", "]"))),
        (
            'emails[value eq "a\\"]b"].display',
            PatchPath(P("emails"), eq("value", 'a"]b'), "display"),
        ),
        ("  members  ", PatchPath(P("members"))),
    ],
)
def test_patch_paths(text: str, expected: PatchPath) -> None:
    assert parse_patch_path(text) == expected


def test_bare_urn_path_prints_back_as_the_urn() -> None:
    assert str(parse_patch_path(ENTERPRISE).attr) == ENTERPRISE


@pytest.mark.parametrize(
    ("text", "in_detail"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("a b", "unexpected 'b'"),
        ("a.b.c", "unexpected '.c'"),
        ("emails[", "never closed"),
        ('emails[type eq "w"', "never closed"),
        ("emails[]", "empty value filter"),
        ('emails[type eq "w"]x', "unexpected 'x'"),
        ('emails[type eq "w"].value.x', "unexpected '.x'"),
        ('emails[type eq "w"][value eq "x"]', "unexpected '['"),
        ("emails[type eq]", "needs a value"),
        ('emails[type[value eq "x"] pr]', "nested"),
        ('emails[foo.bar eq "x"]', "sub-attribute name"),
        ('"members"', "expected an attribute name"),
        ("members eq", "unexpected 'eq'"),
        ("[type eq 1]", "expected an attribute name"),
        ("members@", "unexpected character '@'"),
        ("urn:a:b:", "ends too early"),
    ],
)
def test_invalid_patch_paths(text: str, in_detail: str) -> None:
    with pytest.raises(InvalidPath) as caught:
        parse_patch_path(text)
    assert in_detail in caught.value.detail
    assert caught.value.scim_type == "invalidPath"


def test_invalid_patch_path_detail_names_the_path() -> None:
    with pytest.raises(InvalidPath) as caught:
        parse_patch_path('emails[type eq "w"].value.extra')
    assert 'emails[type eq "w"].value.extra' in caught.value.detail


def test_patch_path_length_limit() -> None:
    with pytest.raises(InvalidPath):
        parse_patch_path("a" * (MAX_FILTER_LENGTH + 1))


def test_non_string_patch_path() -> None:
    with pytest.raises(InvalidPath):
        parse_patch_path(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("parse", "as_sent", "remembered", "small", "large"),
    [
        (
            parse_filter,
            _parsed_as_sent,
            filter_module._parse_template,
            'title eq "a" and nickName sw "b"',
            " or ".join(f'title eq "{n}" and nickName ne "{n}"' for n in range(40)),
        ),
        (
            parse_patch_path,
            filter_module._parsed_patch_path,
            filter_module._patch_path_template,
            'emails[type eq "a" and value sw "b"]',
            "emails[" + " or ".join(f'value eq "{n}" and type ne "{n}"' for n in range(40)) + "]",
        ),
    ],
)
def test_only_small_templates_are_remembered(
    parse: Callable[[str], object],
    as_sent: Callable[[str], object],
    remembered: Any,
    small: str,
    large: str,
) -> None:
    """A long template (no IdP sends one) is parsed for its request alone: distinct long
    filters would otherwise fill the cache with large trees. The short ones IdPs send stay."""
    remembered.cache_clear()
    assert parse(large) == as_sent(large)
    assert remembered.cache_info().currsize == 0
    assert parse(small) == as_sent(small)
    assert remembered.cache_info().currsize == 1
