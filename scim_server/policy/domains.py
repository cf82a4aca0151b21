"""Email-domain policy and the single-domain SSO rule (DESIGN §5.4 items 2 and 3), pure.

Nothing here reads or writes the store; the service layer passes plain values in.

- **Allowed set.** An organisation that enforces SSO allows exactly its one SSO domain. Otherwise
  its domain whitelist, if it has one; otherwise any domain (:func:`allowed_set` answers None).
- **The rule.** Every address checked must have a domain in the allowed set; a subdomain of an
  allowed domain only counts when the organisation allows subdomains. The caller decides which
  addresses are checked: every ``emails`` value, and ``userName`` when it is an email.
- **Comparing domains.** Both sides are normalised the same way: lower case, one trailing dot
  removed (``acme.com.`` is the fully qualified spelling of ``acme.com``), internationalised
  labels in their ASCII (punycode) form, so ``Bücher.example`` and ``xn--bcher-kva.example``
  are the same domain. Python's ``idna`` codec does the conversion (IDNA 2003 nameprep, close
  enough to IDNA 2008 for the letters real domains use); anything it cannot convert, and anything
  that is not a host name made of letters, digits and inner hyphens, is an invalid domain. A
  domain also needs at least two labels: ``acme`` is a typo, not a domain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: A host-name label in ASCII form (RFC 1123 §2.1): letters, digits, inner hyphens, 1-63 chars.
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_DOMAIN_LENGTH = 253


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


def email_domain(address: str) -> str | None:
    """The domain part of an email address as written (after the last "@"); None when
    ``address`` is not an email address (no "@", or nothing before or after it)."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
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
    """The addresses of a user the policy applies to: ``userName`` when it is an email, and
    every email value."""
    found = [user_name] if email_domain(user_name) is not None else []
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
