"""The domain policy (DESIGN §5.4 items 2 and 3), against a plain statement of the rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scim_server.policy.domains import (
    DomainSettings,
    InvalidDomain,
    allowed_set,
    check,
    email_domain,
    normalise_domain,
    sso_conflicts,
    user_addresses,
)

# -- examples ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("acme.com", "acme.com"),
        ("ACME.Com", "acme.com"),
        ("acme.com.", "acme.com"),
        (" acme.com ", "acme.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example.", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
        ("mail.bücher.example", "mail.xn--bcher-kva.example"),
    ],
)
def test_normalise_domain(text: str, expected: str) -> None:
    assert normalise_domain(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", ".", "acme", "acme.com..", "a..com", "-acme.com", "acme-.com", "ac_me.com", "ac me.com",
     "xn--zz.com", "@acme.com", "a" * 64 + ".com", ".".join(["abcdefghi"] * 26)],
)  # fmt: skip
def test_invalid_domains(text: str) -> None:
    with pytest.raises(InvalidDomain):
        normalise_domain(text)


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("bob@acme.com", "acme.com"),
        ("o'neil.j+scim@acme.com", "acme.com"),
        ("jürgen@bücher.example", "bücher.example"),
        ('"a@b"@acme.com', "acme.com"),
        ('"john, doe"@acme.com', "acme.com"),
        ("bob", None),
        ("bob@", None),
        ("@acme.com", None),
        # what a mailer reads as another address, or as a name and an address: the text after
        # the last "@" is not where the message would go
        ("e1@evil.com,x@acme.com", None),
        ("e1@evil.com;x@acme.com", None),
        ("e3@evil.com>, <x@acme.com", None),
        ("d24@evil.com#@acme.com", None),
        ("d23@evil.com\\@acme.com", None),
        ("Eve <e@evil.com>@acme.com", None),
        ("bob smith@acme.com", None),
        ("bob\r\nBcc: e@evil.com@acme.com", None),
        ("bob\u200b@acme.com", None),
        # surrounding whitespace is not part of an address
        ("bob@acme.com\n", "acme.com"),
        (" jane@acme.com ", "acme.com"),
        # RFC 6531 allows non-ASCII punctuation, and IDNA its other full stops
        ("o\u2019brien@acme.com", "acme.com"),
        ("x@col\u00b7legi.cat", "col\u00b7legi.cat"),
        ("x@b\u00fccher\uff61example", "b\u00fccher\uff61example"),
        # but nothing a mailer normalising to NFKC reads as a separator
        ("e\uff20evil.com\uff0cx@acme.com", None),
        # MTAs route these on to evil.com (the percent hack, bang paths)
        ("e%evil.com@acme.com", None),
        ("evil.com!e@acme.com", None),
        ('"e%evil.com"@acme.com', None),
        ('"unclosed@acme.com', None),
        ('"a"b"@acme.com', None),
        ('"a\r\nb"@acme.com', None),
    ],
)
def test_email_domain(address: str, domain: str | None) -> None:
    assert email_domain(address) == domain


def test_allowed_set_sso_wins_over_the_whitelist() -> None:
    assert allowed_set(DomainSettings()) is None
    assert allowed_set(DomainSettings(allowed_domains=("a.com", "b.com"))) == {"a.com", "b.com"}
    assert allowed_set(DomainSettings("a.com", ("a.com",))) == {"a.com"}


def test_user_addresses_take_user_name_only_when_it_is_an_email() -> None:
    assert user_addresses("jdoe", ["j@acme.com"]) == ["j@acme.com"]
    assert user_addresses("jdoe@acme.com", ["x@acme.com"]) == ["jdoe@acme.com", "x@acme.com"]
    assert user_addresses("@jdoe", []) == []
    assert user_addresses("jdoe@", []) == []


def test_a_user_name_shaped_like_an_address_is_checked_as_one() -> None:
    """A userName with an "@" that is no valid address is not waved through as a plain name:
    a mailer may still read an address (or two) in it."""
    settings = DomainSettings(allowed_domains=("acme.com",))
    addresses = user_addresses("e1@evil.com,x@acme.com", [])
    assert addresses == ["e1@evil.com,x@acme.com"]
    violation = check(addresses, settings)
    assert violation is not None
    assert "is not an email address" in violation.detail("acme")


def test_violation_details_name_the_domain_the_organisation_and_the_allowed_set() -> None:
    sso = DomainSettings("acme.com")
    violation = check(["bob@acme.com", "bob@gmail.com"], sso)
    assert violation is not None
    assert violation.detail("acme") == (
        'email domain "gmail.com" is not allowed for organisation "acme" (allowed: acme.com): '
        '"bob@gmail.com"'
    )
    wide = DomainSettings(None, ("b.com", "a.com"), allow_subdomains=True)
    violation = check(["bob"], wide)
    assert violation is not None
    assert violation.detail("acme") == (
        '"bob" is not an email address; only addresses are accepted for organisation "acme" '
        "(allowed: a.com, b.com and their subdomains)"
    )
    violation = check(["bob@a..com"], wide)
    assert violation is not None
    assert "not a valid domain" in violation.detail("acme")
    assert check(["bob"], DomainSettings()) is None  # any domain: nothing to check


def test_sso_allows_no_second_domain() -> None:
    assert sso_conflicts(DomainSettings("acme.com", ("acme.com",))) is None
    assert sso_conflicts(DomainSettings(None, ("a.com", "b.com"))) is None
    conflict = sso_conflicts(DomainSettings("acme.com", ("acme.com", "other.com")))
    assert conflict is not None
    assert "other.com" in conflict


# -- property: the policy agrees with the rule stated plainly ----------------------------------
#
# A domain is generated as its canonical labels (what the domain *is*), then written in one of
# its spellings: ASCII labels in any case, internationalised labels in Unicode (any case) or in
# punycode (any case, built with the punycode codec rather than the idna one), with or without
# the trailing dot. The rule, on canonical labels: the allowed set is the SSO domain if there is
# one, else the whitelist if not empty, else anything; a domain is allowed if it equals an
# allowed domain, or (with subdomains allowed) ends with one and has more labels.

ASCII = "abcdefghijklmnopqrstuvwxyz0123456789"
CANONICAL_NON_ASCII = "äöüéèñçøå"

ascii_label = st.text(ASCII, min_size=1, max_size=8)
idn_label = st.builds(
    lambda head, tail, at: head[:at] + tail + head[at:],
    st.text(ASCII, max_size=5),
    st.text(CANONICAL_NON_ASCII, min_size=1, max_size=3),
    st.integers(0, 5),
)
Label = str  # canonical: lower case, Unicode
canonical_domain = st.lists(st.one_of(ascii_label, idn_label), min_size=1, max_size=3).map(
    lambda labels: (*labels, "example")
)


@st.composite
def spelling(draw: st.DrawFn, labels: tuple[Label, ...]) -> str:
    """One way of writing the domain whose canonical labels are ``labels``."""
    written = []
    for label in labels:
        if label.isascii():
            written.append("".join(c.upper() if draw(st.booleans()) else c for c in label))
        elif draw(st.booleans()):
            punycode = "xn--" + label.encode("punycode").decode("ascii")
            written.append(punycode.upper() if draw(st.booleans()) else punycode)
        else:
            written.append(label.upper() if draw(st.booleans()) else label)
    return ".".join(written) + ("." if draw(st.booleans()) else "")


def related(base: tuple[Label, ...]) -> st.SearchStrategy[tuple[Label, ...]]:
    """Domains worth comparing with ``base``: itself, a parent, a child, an unrelated one."""
    return st.one_of(
        st.just(base),
        st.just(base[1:]) if len(base) > 2 else st.just(base),
        st.builds(lambda extra: (extra, *base), st.one_of(ascii_label, idn_label)),
        canonical_domain,
    )


def allowed_by_rule(
    domain: tuple[Label, ...],
    sso: tuple[Label, ...] | None,
    whitelist: list[tuple[Label, ...]],
    subdomains: bool,
) -> bool:
    if sso is not None:
        allowed = [sso]
    elif whitelist:
        allowed = whitelist
    else:
        return True
    return any(
        domain == parent
        or (subdomains and len(domain) > len(parent) and domain[-len(parent) :] == parent)
        for parent in allowed
    )


@given(data=st.data())
def test_policy_matches_the_rule(data: st.DataObject) -> None:
    domain = data.draw(canonical_domain, "domain")
    local = data.draw(st.text(ASCII + ".+_", min_size=1, max_size=8), "local part")
    address = f"{local}@{data.draw(spelling(domain), 'spelling')}"
    use_sso = data.draw(st.booleans(), "sso")
    sso = data.draw(related(domain), "sso domain") if use_sso else None
    whitelist = [] if use_sso else data.draw(st.lists(related(domain), max_size=3), "whitelist")
    subdomains = data.draw(st.booleans(), "subdomains")

    def stored(labels: tuple[Label, ...]) -> str:  # settings are normalised when stored
        return normalise_domain(data.draw(spelling(labels)))

    settings = DomainSettings(
        sso_domain=stored(sso) if sso is not None else None,
        allowed_domains=tuple(stored(labels) for labels in whitelist),
        allow_subdomains=subdomains,
    )
    violation = check([address], settings)
    assert (violation is None) == allowed_by_rule(domain, sso, whitelist, subdomains)
    if violation is not None:
        assert violation.address == address


@given(labels=canonical_domain, data=st.data())
def test_every_spelling_of_a_domain_normalises_the_same(
    labels: tuple[Label, ...], data: st.DataObject
) -> None:
    first = normalise_domain(data.draw(spelling(labels)))
    assert normalise_domain(data.draw(spelling(labels))) == first
    assert first == ".".join(
        label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")
        for label in labels
    )


@given(
    name=st.text(ASCII, min_size=1, max_size=8),
    other=st.text(CANONICAL_NON_ASCII + ASCII, min_size=1, max_size=8),
)
def test_a_domain_that_is_only_a_suffix_of_a_label_is_not_a_subdomain(
    name: str, other: str
) -> None:
    settings = DomainSettings("acme.example", allow_subdomains=True)
    assert check([f"{name}@{other}acme.example"], settings) is not None
    assert check([f"{name}@{other}.acme.example"], settings) is None


@pytest.mark.parametrize("domain", ["faß.de", "FAẞ.de", "ς.example", "a\u200db.example"])
def test_domains_idna_2003_and_2008_read_differently_are_refused(domain: str) -> None:
    """Under IDNA 2003 "faß.de" is fass.de; under IDNA 2008 (registries, most mail software)
    it is xn--fa-hia.de, a domain someone else may own: a whitelist of fass.de must not let it
    through, and it cannot be allowed either."""
    with pytest.raises(InvalidDomain, match="ambiguous"):
        normalise_domain(domain)
    assert check([f"x@{domain}"], DomainSettings(allowed_domains=("fass.de",))) is not None
