"""Email-domain policy and the single-domain SSO rule (DESIGN §5.4 items 2 and 3), pure.

Nothing here reads or writes the store; the service layer passes plain values in.

- **Allowed set.** An organisation that enforces SSO allows exactly its one SSO domain. Otherwise
  its domain whitelist, if it has one; otherwise any domain (:func:`allowed_set` answers None).
- **The rule.** Every address checked must be one valid email address with a domain in the
  allowed set; a subdomain of an allowed domain only counts when the organisation allows
  subdomains. The caller decides which addresses are checked: every ``emails`` value, and
  ``userName`` when it is an email.
- **Comparing domains.** Both sides are normalised the same way: lower case, one trailing dot
  removed (``acme.com.`` is the fully qualified spelling of ``acme.com``), internationalised
  labels in their ASCII (punycode) form, so ``Bücher.example`` and ``xn--bcher-kva.example``
  are the same domain. Python's ``idna`` codec does the conversion (IDNA 2003 nameprep, close
  enough to IDNA 2008 for the letters real domains use); anything it cannot convert, and anything
  that is not a host name made of letters, digits and inner hyphens, is an invalid domain. A
  domain also needs at least two labels: ``acme`` is a typo, not a domain. A domain with ß, ς
  or a zero-width joiner is refused: IDNA 2003 and IDNA 2008 read it as two different domains.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: A host-name label in ASCII form (RFC 1123 §2.1): letters, digits, inner hyphens, 1-63 chars.
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_DOMAIN_LENGTH = 253
#: UTS 46's deviation characters: IDNA 2003 maps "faß.de" to fass.de, IDNA 2008 to
#: xn--fa-hia.de, another domain someone else may own, so neither reading can be trusted.
_IDNA_DEVIATIONS = frozenset("\u00df\u03c2\u200c\u200d")


class InvalidDomain(ValueError):
    """Text that is not a domain name."""


def normalise_domain(text: str) -> str:
    """``text`` as a comparable domain: lower case, ASCII (punycode), no trailing dot.

    Raises :class:`InvalidDomain` for anything that is not a host name of two labels or more.
    """
    domain = text.strip().lower()
    if domain.endswith("."):
        domain = domain[:-1]
    if not domain:
        raise InvalidDomain(f"{text!r} is not a domain name")
    if any(char in _IDNA_DEVIATIONS for char in domain):
        raise InvalidDomain(
            f"{text!r} is ambiguous: IDNA 2003 (this server) reads ß, ς and the zero-width "
            "joiners as another domain than IDNA 2008 (registries and most mail software) does"
        )
    try:
        ascii_form = domain.encode("idna").decode("ascii").lower()
        # An ASCII label spelled "xn--..." passes the encoder unchecked: it must decode, and
        # decode to what it says (no uppercase or ASCII-only smuggled through punycode).
        if ascii_form.encode("ascii").decode("idna").encode("idna").decode("ascii") != ascii_form:
            raise InvalidDomain(f"{text!r} is not a valid internationalised domain name")
    except UnicodeError:
        raise InvalidDomain(f"{text!r} is not a valid domain name") from None
    labels = ascii_form.split(".")
    if (
        len(ascii_form) > MAX_DOMAIN_LENGTH
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
    ):
        raise InvalidDomain(
            f"{text!r} is not a domain name (letters, digits and '-', at least two labels)"
        )
    return ascii_form


#: What a local part may hold unquoted (RFC 5322 §3.2.3 atext, and dots), less "%" and "!":
#: MTAs still route "e%evil.com@acme.com" and "evil.com!e@acme.com" on to evil.com (Postfix's
#: percent hack is on by default), and no IdP sends them.
_ATEXT = frozenset(string.ascii_letters + string.digits + "#$&'*+-/=?^_`{|}~.")
#: What separates or wraps addresses in a header, or ends one.
_SPECIALS = frozenset('()<>[]:;@\\,"%! \t\r\n')


#: A quoted local part (RFC 5322 §3.2.4): printable ASCII and quoted pairs, "%" and "!" left out.
_QUOTED_LOCAL_PART = re.compile(r'"(?:[ #$&-\[\]-~]|\\[ "#$&-~])*"')


def _plain_non_ascii(char: str) -> bool:
    """A non-ASCII character an internationalised address (RFC 6531) or domain may hold: not
    a space, control, invisible or unassigned character, and nothing a mailer normalising to
    NFKC would read as a separator (the fullwidth "@" and "," U+FF20, U+FF0C)."""
    category = unicodedata.category(char)
    if char.isascii() or category in {"Cc", "Cf", "Co", "Cs", "Cn"} or category[0] == "Z":
        return False
    return not any(part in _SPECIALS for part in unicodedata.normalize("NFKC", char))


def _valid_local_part(local: str) -> bool:
    """A dot-atom of atext (dots anywhere: real mailboxes have them where RFC 5322 says they
    may not, and a dot separates nothing), or a quoted string of printable ASCII; "%" and "!"
    in neither."""
    if local.startswith('"'):
        return _QUOTED_LOCAL_PART.fullmatch(local) is not None
    return bool(local) and all(char in _ATEXT or _plain_non_ascii(char) for char in local)


def _valid_domain_part(domain: str) -> bool:
    """Only what a host name is written with (IDNA's other full stops included); whether it is
    one is :func:`normalise_domain`'s to say."""
    return all(
        (char.isascii() and (char.isalnum() or char in "-.")) or _plain_non_ascii(char)
        for char in domain
    )


def address_shaped(text: str) -> bool:
    """Text written as an email address, valid or not: something on both sides of its last
    "@". A ``userName`` of that shape is checked as an address; "jdoe" and "@jdoe" are not."""
    local, at, domain = text.strip().rpartition("@")
    return bool(at and local and domain)


def email_domain(address: str) -> str | None:
    """The domain part of an email address as written (after the last "@"); None when
    ``address`` is not one email address. Surrounding whitespace is not part of it.

    The part before the "@" must be a valid local part: with the whole text handed to a mailer
    as the recipient, "e@evil.com,x@acme.com" or "Eve <e@evil.com>@acme.com" would reach
    evil.com although the text ends in "@acme.com".
    """
    local, at, domain = address.strip().rpartition("@")
    if not at or not _valid_local_part(local) or not domain or not _valid_domain_part(domain):
        return None
    return domain


@dataclass(frozen=True)
class DomainSettings:
    """An organisation's domain settings, normalised (as the store keeps them)."""

    sso_domain: str | None = None
    allowed_domains: tuple[str, ...] = ()
    allow_subdomains: bool = False

    @property
    def enforces_sso(self) -> bool:
        return self.sso_domain is not None


def allowed_set(settings: DomainSettings) -> frozenset[str] | None:
    """The domains addresses may have; None: any domain."""
    if settings.sso_domain is not None:
        return frozenset({settings.sso_domain})
    if settings.allowed_domains:
        return frozenset(settings.allowed_domains)
    return None


def domain_allowed(domain: str, allowed: frozenset[str], allow_subdomains: bool) -> bool:
    """Whether the normalised ``domain`` is in ``allowed`` (or under one, if subdomains count)."""
    if domain in allowed:
        return True
    return allow_subdomains and any(domain.endswith("." + parent) for parent in allowed)


@dataclass(frozen=True)
class Violation:
    """An address the settings refuse, and why."""

    address: str
    #: The domain as written in the address; None when the address is not an email address.
    domain: str | None
    #: The allowed domains, sorted.
    allowed: tuple[str, ...]
    allow_subdomains: bool
    #: The domain is not a valid domain name at all (rather than one not allowed).
    invalid: bool = False

    def allowed_text(self) -> str:
        listed = ", ".join(self.allowed)
        if self.allow_subdomains:
            return f"{listed} and {'their' if len(self.allowed) > 1 else 'its'} subdomains"
        return listed

    def detail(self, org_slug: str) -> str:
        """The sentence an IT admin reads in the IdP's provisioning log."""
        where = f'for organisation "{org_slug}" (allowed: {self.allowed_text()})'
        if self.domain is None:
            return f'"{self.address}" is not an email address; only addresses are accepted {where}'
        if self.invalid:
            return f'email domain "{self.domain}" of "{self.address}" is not a valid domain {where}'
        return f'email domain "{self.domain}" is not allowed {where}: "{self.address}"'


def check(addresses: Iterable[str], settings: DomainSettings) -> Violation | None:
    """The first address ``settings`` refuse, or None when every one is allowed."""
    allowed = allowed_set(settings)
    if allowed is None:
        return None
    ordered = tuple(sorted(allowed))
    for address in addresses:
        raw = email_domain(address)
        if raw is None:
            return Violation(address, None, ordered, settings.allow_subdomains)
        try:
            domain = normalise_domain(raw)
        except InvalidDomain:
            return Violation(address, raw, ordered, settings.allow_subdomains, invalid=True)
        if not domain_allowed(domain, allowed, settings.allow_subdomains):
            return Violation(address, raw, ordered, settings.allow_subdomains)
    return None


def user_addresses(user_name: str, emails: Iterable[str]) -> list[str]:
    """The addresses of a user the policy applies to: ``userName`` when it is shaped like an
    email (one that is not a valid address is refused as such, not waved through as a plain
    name), and every email value."""
    found = [user_name] if address_shaped(user_name) else []
    found.extend(emails)
    return found


def sso_conflicts(settings: DomainSettings) -> str | None:
    """Why ``settings`` break the single-domain SSO rule, or None when they keep it.

    An organisation that enforces SSO has exactly one domain: a whitelist naming any other
    domain is refused rather than silently ignored.
    """
    if settings.sso_domain is None:
        return None
    others = sorted(d for d in settings.allowed_domains if d != settings.sso_domain)
    if not others:
        return None
    return (
        f"an organisation that enforces SSO has exactly one domain ({settings.sso_domain}); "
        f"the allowed domains also name {', '.join(others)}"
    )


def seat_domain(doc: dict[str, Any]) -> str | None:
    """The normalised domain deciding the user's seat exemption (DESIGN §5.4 item 5):
    ``userName``'s when it is an email, else the primary email's, else the first email's."""
    candidates: list[Any] = [doc.get("userName")]
    emails = doc.get("emails")
    if isinstance(emails, list):
        listed = [e for e in emails if isinstance(e, dict)]
        candidates += [e.get("value") for e in listed if e.get("primary") is True]
        candidates += [e.get("value") for e in listed]
    for address in candidates:
        raw = email_domain(address) if isinstance(address, str) else None
        if raw is None:
            continue
        try:
            return normalise_domain(raw)
        except InvalidDomain:
            return None
    return None
