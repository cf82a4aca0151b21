"""Schema-driven validation of resource bodies (RFC 7643 §2, §3, §7; RFC 7644 §3.3, §3.5.1).

:func:`parse_resource` turns a POST/PUT body, or a document a PATCH produced, into the *canonical
document* the services store: every key spelled as in the schema documents, extension attributes
under their canonical schema URN, unassigned values gone. It is step 1 of DESIGN §5.4 (schema:
required attributes, types, mutability); uniqueness needs the store and is checked there.

Rules that are policy rather than RFC text, and why:

- ``readOnly`` attributes and sub-attributes are dropped, not refused (DESIGN §5.4): Okta sends
  ``id``, ``meta`` and ``groups`` back on every PUT and must not be answered 400 for it.
- ``returned: never`` attributes (``password``) are accepted and discarded without being looked
  at: this product signs users in through SSO, and a value that is never kept cannot leak.
- Attribute names are matched case-insensitively (RFC 7643 §2.1); the same attribute given twice
  in different case is ambiguous, so it is refused rather than resolved by key order.
- ``canonicalValues`` are suggestions (RFC 7643 §7) and are not enforced: IdPs send their own
  ``type`` labels.
- ``binary`` values must be base64 (RFC 7643 §2.3.6, RFC 4648 §4; :func:`base64_problem` says
  exactly what is accepted), and are stored as sent. A value already stored is not re-checked
  (as ``roles`` are not): a user an older server stored with one can still be deactivated by a
  PATCH or re-sent whole by Okta's PUT.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from scim_server.scim.errors import InvalidSyntax, InvalidValue, Mutability
from scim_server.scim.schema import Attribute, ResourceType, Schema

#: Longest string/reference value accepted (characters). Generous for every SCIM string attribute,
#: small enough that one request cannot make the store, the audit log and every IdP log carry
#: megabytes of one field.
MAX_STRING_LENGTH = 4096

#: Longest ``binary`` value accepted (characters of base64). Binary attributes carry X.509
#: certificates (RFC 7643 §4.1.2), whose base64 form can exceed :data:`MAX_STRING_LENGTH`.
MAX_BINARY_LENGTH = 65536

#: Attribute names echoed in an error ``detail`` are cut to this length.
_MAX_NAME_IN_DETAIL = 100

# xsd:dateTime (XML Schema Part 2 §3.2.7) as RFC 7643 §2.3.5 requires, narrowed to what an
# unambiguous instant needs: a four-digit year, seconds, optional fraction, and a time zone.
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})", re.ASCII
)

# RFC 4648 §4 base64 after ASCII whitespace is removed: groups of four characters of the standard
# alphabet, the last one padded with "=" (see base64_problem).
_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?", re.ASCII)
# SP, HTAB, CR, LF, VT and FF: what RFC 7468 §3 lets a lax parser skip in a PEM body.
_BASE64_SPACE = " \t\r\n\v\f"
_NO_SPACE = str.maketrans("", "", _BASE64_SPACE)

# Characteristics of the common attributes (RFC 7643 §3.1) that appear in a body.
_DROPPED_COMMON = frozenset({"id", "meta"})
_EXTERNAL_ID = Attribute(name="externalId", type="string", case_exact=True)
_STRING_TYPES = frozenset({"string", "reference", "binary"})


def parse_resource(
    rt: ResourceType, payload: object, *, existing: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Validate a resource body against ``rt`` and return its canonical document.

    ``existing`` is the stored canonical document when the body replaces a resource (PUT, or the
    result of a PATCH): ``immutable`` attributes that already have a value must keep it
    (RFC 7644 §3.5.1), and one the body omits is carried over rather than lost.

    Raises InvalidSyntax for a malformed body or an unknown/duplicated attribute, InvalidValue for
    a wrong type, a missing required attribute or an unknown schema URN, and Mutability for a
    change to an immutable attribute.
    """
    if not isinstance(payload, dict):
        raise InvalidSyntax(
            f"the {rt.name} resource must be a JSON object, got {_json_type(payload)}"
        )
    fields = _index_keys(payload, prefix="")
    if "schemas" in fields:
        _check_schemas(rt, fields["schemas"][1])

    core: dict[str, Any] = {}
    external_id: str | None = None
    extensions: dict[str, dict[str, Any]] = {}
    for lowered, (key, value) in fields.items():
        if lowered == "schemas" or lowered in _DROPPED_COMMON:
            continue
        elif lowered == "externalid":
            external_id = _single_value(_EXTERNAL_ID, value, "externalId", rt.name)
        elif (attr := rt.schema.attribute(key)) is not None:
            _put(core, attr, _attribute_value(attr, value, attr.name, rt.name))
        elif (ext := _extension_schema(rt, key)) is not None:
            extensions[ext.id] = _parse_extension(rt, ext, value)
        else:
            raise InvalidSyntax(f"unknown attribute {_shown(key)} for resource type {rt.name}")

    if existing is not None:
        _keep_immutable(rt.schema.attributes, existing, core, "")
        for ext_link in rt.extensions:
            ext_id = ext_link.schema.id
            stored = _get_ci(existing, ext_id)
            if isinstance(stored, dict):
                target = extensions.setdefault(ext_id, {})
                _keep_immutable(ext_link.schema.attributes, stored, target, f"{ext_id}:")

    _check_required(rt.schema.attributes, core, "")
    for ext_link in rt.extensions:
        ext_id = ext_link.schema.id
        body = extensions.get(ext_id) or {}
        if body:
            _check_required(ext_link.schema.attributes, body, f"{ext_id}:")
        elif ext_link.required:
            raise InvalidValue(f"extension {ext_id} is required for resource type {rt.name}")

    present = [link.schema for link in rt.extensions if extensions.get(link.schema.id)]
    doc: dict[str, Any] = {"schemas": [rt.schema.id, *(schema.id for schema in present)]}
    if external_id is not None:
        doc["externalId"] = external_id
    doc.update(_in_schema_order(rt.schema.attributes, core))
    for schema in present:
        doc[schema.id] = _in_schema_order(schema.attributes, extensions[schema.id])
    _check_binary(rt, doc, existing)
    return doc


def base64_problem(text: str) -> str | None:
    """Why ``text`` is not a base64 value (RFC 7643 §2.3.6: "base64 encoding as specified in
    Section 4 of RFC 4648"), or None if it is one. The rule, as decided:

    - the standard alphabet (A-Z, a-z, 0-9, ``+``, ``/``); base64url's ``-`` and ``_`` (RFC 4648
      §5) are another encoding, refused;
    - padded with ``=`` to a multiple of four characters, as RFC 4648 §4 pads; unpadded input is
      refused (§3.2 lets a specification omit padding, and RFC 7643 does not);
    - ASCII whitespace (space, tab, CR, LF, VT, FF) is ignored wherever it is, so a PEM body
      pasted with its line breaks (RFC 7468) is accepted: stripping it leaves the same bytes;
    - the pad bits of the last group are not checked (RFC 4648 §3.5 lets a decoder accept them).

    The value itself is never quoted (it may be long; the attribute and the rule say what to
    fix)."""
    if text.isascii() and _BASE64.fullmatch(text):
        return None  # the common case: one line, no whitespace
    if text.lstrip().startswith("-----BEGIN"):
        return (
            "it is a PEM text (RFC 7468): send only the base64 between its -----BEGIN and "
            "-----END lines"
        )
    for position, character in enumerate(text, start=1):
        if character in _BASE64_ALPHABET or character in _BASE64_SPACE or character == "=":
            continue
        hint = " (- and _ are base64url, RFC 4648 §5)" if character in "-_" else ""
        return f"character {position} is not in the base64 alphabet (A-Z, a-z, 0-9, +, /){hint}"
    compact = text.translate(_NO_SPACE)
    if _BASE64.fullmatch(compact):
        return None
    if "=" in compact.rstrip("=") or len(compact) - len(compact.rstrip("=")) > 2:
        return 'its "=" padding may only end it, once or twice'
    return (
        f"its {len(compact)} base64 characters are not a multiple of 4: base64 is padded with "
        '"=" (RFC 4648 §4)'
    )


def _check_binary(rt: ResourceType, doc: dict[str, Any], existing: dict[str, Any] | None) -> None:
    """400 ``invalidValue`` for a ``binary`` value of ``doc`` that is not base64, unless
    ``existing`` already holds it at the same attribute (see the module's rules)."""
    for path, value in _binary_values(rt, doc):
        problem = base64_problem(value)
        if problem is None:
            continue
        if existing is not None and (path, value) in set(_binary_values(rt, existing)):
            continue
        raise InvalidValue(
            f"attribute {_shown(path)} must be base64 (RFC 7643 §2.3.6, RFC 4648 §4): {problem}"
        )


def _binary_values(rt: ResourceType, doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(attribute path, value) of every ``binary`` string in a canonical document, the paths as
    validation names them (``x509Certificates.value``), whichever attributes the schemas type
    ``binary``."""
    yield from _binary_in(rt.schema.binary_attributes, doc, "")
    for link in rt.extensions:
        holder = _get_ci(doc, link.schema.id) if link.schema.binary_attributes else None
        if isinstance(holder, dict):
            yield from _binary_in(link.schema.binary_attributes, holder, f"{link.schema.id}:")


def _binary_in(
    attributes: Iterable[Attribute], obj: dict[str, Any], prefix: str
) -> Iterator[tuple[str, str]]:
    for attr in attributes:
        value = _get_ci(obj, attr.name)
        if value is None:
            continue
        path = prefix + attr.name
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                binary = (sub for sub in attr.sub_attributes if sub.type == "binary")
                yield from _binary_in(binary, item, f"{path}.")
            elif isinstance(item, str) and attr.type == "binary":
                yield path, item


class DateTimeOutOfRange(ValueError):
    """A well-formed dateTime whose instant falls outside the years 0001 to 9999 in UTC (stored
    and compared in UTC, it is no instant Python or either database can hold)."""

    RULE = "out of range: in UTC it must fall in the years 0001 to 9999"


def parse_datetime(value: str) -> datetime:
    """Parse an RFC 7643 §2.3.5 dateTime (xsd:dateTime with a time zone) to an aware datetime.

    Raises ValueError for anything else: a bare date, a missing offset (ambiguous: whose 23:59?),
    or an impossible calendar date. Fractions beyond microseconds are truncated.
    """
    if not _DATETIME.fullmatch(value):
        raise ValueError(f"not an xsd:dateTime with time zone: {value!r}")
    parsed = datetime.fromisoformat(value)
    try:
        parsed.astimezone(UTC)
    except OverflowError:
        raise DateTimeOutOfRange(f"{value!r} is {DateTimeOutOfRange.RULE}") from None
    return parsed


# --- structure ----------------------------------------------------------------------------------


def _index_keys(obj: dict[Any, Any], *, prefix: str) -> dict[str, tuple[str, Any]]:
    """Map lower-cased keys to (key, value), refusing one name given twice in different case.

    RFC 7643 §2.1: attribute names are case-insensitive, so ``userName`` and ``USERNAME`` are the
    same attribute; accepting both would make the stored value depend on JSON key order.
    """
    found: dict[str, tuple[str, Any]] = {}
    for key, value in obj.items():
        if not isinstance(key, str):  # pragma: no cover - JSON object keys are always strings
            raise InvalidSyntax("attribute names must be strings")
        lowered = key.lower()
        if lowered in found:
            first = found[lowered][0]
            raise InvalidSyntax(
                f"attribute {_shown(prefix + first)} is given twice in different case "
                f"({_shown(first)} and {_shown(key)}); attribute names are case-insensitive"
            )
        found[lowered] = (key, value)
    return found


def _check_schemas(rt: ResourceType, value: object) -> None:
    """``schemas`` names the core schema and only schemas of this resource type (RFC 7643 §3)."""
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(urn, str) for urn in value):
        raise InvalidSyntax('"schemas" must be an array of schema URI strings')
    for urn in value:
        if rt.schema_for_urn(urn) is None:
            raise InvalidValue(f"unknown schema {_shown(urn)} for resource type {rt.name}")
    if not any(urn.lower() == rt.schema.id.lower() for urn in value):
        raise InvalidValue(f'"schemas" must contain {rt.schema.id} for resource type {rt.name}')


def _extension_schema(rt: ResourceType, key: str) -> Schema | None:
    schema = rt.schema_for_urn(key)
    return None if schema is None or schema is rt.schema else schema


def _parse_extension(rt: ResourceType, ext: Schema, value: object) -> dict[str, Any]:
    """Validate the object under an extension URN key (RFC 7643 §3.3)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidSyntax(
            f"extension {ext.id} must be a JSON object of its attributes, got {_json_type(value)}"
        )
    body: dict[str, Any] = {}
    prefix = f"{ext.id}:"
    for key, item in _index_keys(value, prefix=prefix).values():
        attr = ext.attribute(key)
        if attr is None:
            raise InvalidSyntax(
                f"unknown attribute {_shown(prefix + key)} for resource type {rt.name}"
            )
        _put(body, attr, _attribute_value(attr, item, prefix + attr.name, rt.name))
    return body


def _put(target: dict[str, Any], attr: Attribute, value: Any) -> None:
    """Store a validated value under the canonical name; readOnly/never and unassigned vanish."""
    if value is not None and _accepted_on_input(attr):
        target[attr.name] = value


def _accepted_on_input(attr: Attribute) -> bool:
    # readOnly: the server owns the value (DESIGN §5.4). returned=never: write-only secret that
    # this product does not keep (password).
    return attr.mutability != "readOnly" and attr.returned != "never"


# --- values -------------------------------------------------------------------------------------


def _attribute_value(attr: Attribute, value: object, path: str, owner: str) -> Any:
    """The canonical form of one attribute's value, or None when it is unassigned.

    Values the server ignores are not inspected at all, so a stale ``groups`` or ``meta`` echoed
    back by an IdP cannot fail the request.
    """
    if not _accepted_on_input(attr) or value is None:
        return None
    if not attr.multi_valued:
        return _single_value(attr, value, path, owner)
    if not isinstance(value, list):
        raise InvalidValue(
            f"attribute {_shown(path)} must be an array (multi-valued), got {_json_type(value)}"
        )
    items = [v for v in (_single_value(attr, item, path, owner) for item in value) if v is not None]
    if not items:
        return None  # RFC 7643 §2.5: [] is unassigned.
    if attr.is_complex:
        primaries = sum(1 for item in items if item.get("primary") is True)
        if primaries > 1:
            raise InvalidValue(
                f"attribute {_shown(path)} has {primaries} values with primary true; "
                "at most one may be primary (RFC 7643 §2.4)"
            )
    return items


def _single_value(attr: Attribute, value: object, path: str, owner: str) -> Any:
    """Check one (non-list) value against ``attr.type`` (RFC 7643 §2.3)."""
    if value is None:
        return None
    if attr.is_complex:
        return _complex_value(attr, value, path, owner)
    kind = attr.type
    if kind in _STRING_TYPES:
        if not isinstance(value, str):
            raise _wrong_type(path, _EXPECTED[kind], value)
        if "\x00" in value:
            raise InvalidValue(f"attribute {_shown(path)} must not contain the NUL character")
        limit = MAX_BINARY_LENGTH if kind == "binary" else MAX_STRING_LENGTH
        if len(value) > limit:
            raise InvalidValue(
                f"attribute {_shown(path)} is {len(value)} characters long; at most {limit} allowed"
            )
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _wrong_type(path, _EXPECTED[kind], value)
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong_type(path, _EXPECTED[kind], value)
        return value
    if kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong_type(path, _EXPECTED[kind], value)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidValue(f"attribute {_shown(path)} must be a finite decimal number")
        return value
    if kind == "dateTime":
        if not isinstance(value, str):
            raise _wrong_type(path, _EXPECTED[kind], value)
        try:
            parse_datetime(value)
        except DateTimeOutOfRange:
            raise InvalidValue(
                f"attribute {_shown(path)} {_shown(value)} is {DateTimeOutOfRange.RULE}"
            ) from None
        except ValueError:
            raise InvalidValue(
                f"attribute {_shown(path)} must be an xsd:dateTime with time zone "
                f"(for example 2026-01-02T03:04:05Z), got {_shown(value)}"
            ) from None
        return value
    raise InvalidValue(  # pragma: no cover - the schema documents use only RFC 7643 types
        f"attribute {_shown(path)} has unsupported type {kind}"
    )


def _complex_value(attr: Attribute, value: object, path: str, owner: str) -> dict[str, Any] | None:
    """Validate sub-attributes (RFC 7643 §2.3.8); an object left empty is unassigned."""
    if not isinstance(value, dict):
        raise _wrong_type(path, "an object (complex attribute)", value)
    result: dict[str, Any] = {}
    for key, item in _index_keys(value, prefix=f"{path}.").values():
        sub = attr.sub(key)
        if sub is None:
            raise InvalidSyntax(
                f"unknown attribute {_shown(f'{path}.{key}')} for resource type {owner}"
            )
        _put(result, sub, _attribute_value(sub, item, f"{path}.{sub.name}", owner))
    if not result:
        return None
    _check_required(attr.sub_attributes, result, f"{path}.")
    return _in_schema_order(attr.sub_attributes, result)


def _check_required(attributes: Iterable[Attribute], obj: dict[str, Any], prefix: str) -> None:
    """RFC 7643 §2.4 ``required``: present and non-empty (a blank string names nothing)."""
    for attr in attributes:
        if not attr.required or not _accepted_on_input(attr):
            continue  # the server fills readOnly attributes; a client cannot be asked for them
        value = obj.get(attr.name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise InvalidValue(f"attribute {_shown(prefix + attr.name)} is required")


# --- mutability ---------------------------------------------------------------------------------


def _keep_immutable(
    attributes: Iterable[Attribute], stored: dict[str, Any], new: dict[str, Any], prefix: str
) -> None:
    """Enforce ``mutability: immutable`` against the stored document (RFC 7644 §3.5.1).

    A value already set must be sent unchanged (else 400 ``mutability``); an omitted one is carried
    over, since an immutable value cannot be removed either. Sub-attributes of multi-valued
    attributes are not compared: elements have no identity, and replacing a whole element (a group
    member) is adding one and removing another, not changing an immutable value.
    """
    for attr in attributes:
        old = _get_ci(stored, attr.name)
        if old is None or old == [] or not _accepted_on_input(attr):
            continue
        path = prefix + attr.name
        if attr.mutability == "immutable":
            if attr.name not in new:
                new[attr.name] = copy.deepcopy(old)
            elif _comparable(attr, old) != _comparable(attr, new[attr.name]):
                raise Mutability(
                    f"attribute {_shown(path)} is immutable and cannot be changed once set"
                )
        elif (
            attr.is_complex
            and not attr.multi_valued
            and isinstance(old, dict)
            and any(sub.mutability == "immutable" for sub in attr.sub_attributes)
        ):
            target = new.get(attr.name)
            current: dict[str, Any] = target if isinstance(target, dict) else {}
            _keep_immutable(attr.sub_attributes, old, current, f"{path}.")
            if current:
                new[attr.name] = current


def _comparable(attr: Attribute, value: Any) -> Any:
    """A form of ``value`` in which equal SCIM values are equal Python values.

    caseExact=false strings compare case-insensitively (RFC 7643 §2.1 caseExact), dateTimes as
    instants, multi-valued attributes as multisets.
    """
    if attr.multi_valued and isinstance(value, list):
        return sorted(repr(_comparable_single(attr, item)) for item in value)
    return _comparable_single(attr, value)


def _comparable_single(attr: Attribute, value: Any) -> Any:
    if attr.is_complex and isinstance(value, dict):
        parts = []
        for key, item in value.items():
            sub = attr.sub(key)
            parts.append((key.lower(), repr(_comparable(sub, item) if sub else item)))
        return tuple(sorted(parts))
    if isinstance(value, str):
        if attr.type == "dateTime":
            try:
                return parse_datetime(value)
            except ValueError:
                return value
        if not attr.case_exact:
            return value.lower()
    return value


# --- helpers ------------------------------------------------------------------------------------

_EXPECTED = {
    "string": "a string",
    "reference": "a string (reference)",
    "binary": "a string (base64 binary)",
    "boolean": "a boolean",
    "integer": "an integer",
    "decimal": "a decimal number",
    "dateTime": "a string (xsd:dateTime)",
}


def _wrong_type(path: str, expected: str, value: object) -> InvalidValue:
    return InvalidValue(f"attribute {_shown(path)} must be {expected}, got {_json_type(value)}")


def _json_type(value: object) -> str:
    """The JSON type name of a decoded value, for error details an IT admin can read."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "decimal number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__  # pragma: no cover - not producible by a JSON decoder


def _shown(name: str) -> str:
    """Quote a client-supplied name for ``detail``, cut so a huge key cannot bloat logs."""
    if len(name) > _MAX_NAME_IN_DETAIL:
        name = name[:_MAX_NAME_IN_DETAIL] + "..."
    return f'"{name}"'


def _in_schema_order(attributes: Iterable[Attribute], obj: dict[str, Any]) -> dict[str, Any]:
    """Keys in schema order: equal resources serialise alike whatever the client's order."""
    return {attr.name: obj[attr.name] for attr in attributes if attr.name in obj}


def _get_ci(obj: dict[str, Any], name: str) -> Any:
    """``obj[name]`` matched case-insensitively (stored documents are canonical, but be safe)."""
    if name in obj:
        return obj[name]
    lowered = name.lower()
    for key, value in obj.items():
        if key.lower() == lowered:
            return value
    return None
