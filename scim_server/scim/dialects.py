"""IdP dialects (DESIGN §4.1): known deviations from RFC 7644, normalised in one place.

Okta and Microsoft Entra ID send requests the RFC does not quite allow. Each deviation is one
small named rule here, applied to the parsed request before the generic code sees it, chosen by
what the request *contains* — never by guessing the client from its User-Agent. A request a rule
cannot make sense of is left as it is, so the generic code answers it with a clear 400; where
leaving it would change its meaning (a role called ``{"id": ...``), the rule itself answers 400.
No value the request asks to store is dropped; the one rule that discards part of what it
rewrites (``roles-as-json``: an app role's ``id`` and ``displayName``) says why in its docstring
and in the checklist. ``docs/IDP_DIALECTS.md`` lists every known deviation with the rule
that accepts it and the test that proves it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scim_server.scim.errors import InvalidValue, ScimError
from scim_server.scim.filter import parse_filter, parse_patch_path
from scim_server.scim.filter_ast import Compare, Expr
from scim_server.scim.filter_eval import get_ci, resolve_attr_path
from scim_server.scim.schema import ENTERPRISE_USER, Attribute, ResourceType

#: Schema URIs some IdPs add to resources that name no schema of this server (Entra's groups).
FOREIGN_SCHEMA_URIS = frozenset(
    {"http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group".lower()}
)
_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    apply: Callable[[ResourceType, Any], Any]


# -- values of one attribute ---------------------------------------------------------------------


def _boolean_value(attribute: Attribute, item: Any) -> Any:
    """``"True"``/``"false"`` where the schema says boolean, at any depth (Entra)."""
    if attribute.type == "boolean" and isinstance(item, str) and item.lower() in _BOOLEANS:
        return _BOOLEANS[item.lower()]
    if attribute.is_complex:
        if isinstance(item, list):
            return [_booleans_in(attribute.sub, element) for element in item]
        return _booleans_in(attribute.sub, item)
    return item


def _booleans_in(attributes: Callable[[str], Attribute | None], value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    for key, item in list(value.items()):
        attribute = attributes(key) if isinstance(key, str) else None
        if attribute is not None:
            value[key] = _boolean_value(attribute, item)
    return value


def _is_manager(rt: ResourceType, attribute: Attribute) -> bool:
    """The enterprise extension's ``manager`` (RFC 7643 §4.3), not any attribute of that name."""
    enterprise = rt.schema_for_urn(ENTERPRISE_USER)
    return enterprise is not None and attribute is enterprise.attribute("manager")


def _manager_value(value: Any) -> Any:
    """A bare id string is the manager's ``value`` (Entra). Anything else is left to validation,
    which refuses what is neither an object nor null with a 400 naming ``manager``."""
    return {"value": value} if isinstance(value, str) else value


def _is_roles(rt: ResourceType, attribute: Attribute) -> bool:
    return attribute is rt.schema.attribute("roles")


def _each_role(fix: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A fix of one ``roles`` element, applied to a ``roles`` value: one element or a list."""

    def value(item: Any) -> Any:
        return [fix(element) for element in item] if isinstance(item, list) else fix(item)

    return value


def _role_element(element: Any) -> Any:
    """``{"value": "{\\"id\\": ..., \\"value\\": \\"Editor\\", \\"displayName\\": ...}"}``, which
    Entra sends in PATCH for an app role assignment, becomes ``{"value": "Editor"}``: the app
    role's value is the role name. Its ``id`` and ``displayName`` are dropped, so that a removal
    matches the role by name whatever ``display`` it was stored with. A plain role name is left
    alone; a string that starts like a JSON object but is none, or names no role, is a 400 rather
    than a role called ``{...``."""
    if not isinstance(element, dict):
        return element
    key = next((k for k in element if isinstance(k, str) and k.lower() == "value"), None)
    encoded = element.get(key) if key is not None else None
    if not isinstance(encoded, str) or not encoded.lstrip().startswith("{"):
        return element
    shown = encoded if len(encoded) <= 100 else encoded[:100] + "..."
    try:
        decoded = json.loads(encoded)
    except (ValueError, RecursionError):  # nested past the decoder's recursion limit: not a role
        raise InvalidValue(
            f"roles: the value {shown!r} starts like a JSON-encoded app role but is not valid "
            'JSON; send a role name, or {"value": "<role name>", ...} encoded as JSON'
        ) from None
    inner = get_ci(decoded, "value")
    if not isinstance(inner, str) or not inner.strip():
        raise InvalidValue(
            f'roles: the JSON-encoded app role {shown!r} carries no "value" string; its value '
            "must be the name of a role of the organisation"
        )
    return {**{k: v for k, v in element.items() if k != key}, "value": inner}


def _role_display_name(element: Any) -> Any:
    """``{"displayName": "Admin", "value": "Admin", ...}``: Entra's AppRoleAssignmentsComplex
    names a role's ``display`` ``displayName`` in the users it creates. Renamed, value kept; an
    element that also has ``display`` is left for validation to refuse (no shape Entra sends)."""
    if not isinstance(element, dict) or _key(element, "display") is not None:
        return element
    key = _key(element, "displayname")
    if key is None:
        return element
    return {("display" if k == key else k): v for k, v in element.items()}


_roles_as_json = _each_role(_role_element)
_roles_display_name = _each_role(_role_display_name)


# -- resources (POST/PUT bodies, path-less PATCH value objects) ----------------------------------


def _resource_booleans(rt: ResourceType, body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    _booleans_in(rt.schema.attribute, body)
    for ext in rt.extensions:
        holder = get_ci(body, ext.schema.id)
        if isinstance(holder, dict):
            _booleans_in(ext.schema.attribute, holder)
    return body


def _foreign_schema_uris(rt: ResourceType, body: Any) -> Any:
    schemas = get_ci(body, "schemas") if isinstance(body, dict) else None
    if isinstance(schemas, list):
        kept = [s for s in schemas if not (isinstance(s, str) and s.lower() in FOREIGN_SCHEMA_URIS)]
        for key in body:
            if key.lower() == "schemas":
                body[key] = kept
    return body


def _resource_manager(rt: ResourceType, body: Any) -> Any:
    holder = get_ci(body, ENTERPRISE_USER) if isinstance(body, dict) else None
    if isinstance(holder, dict):
        for key in holder:
            if key.lower() == "manager":
                holder[key] = _manager_value(holder[key])
    return body


def _in_resource_roles(fix: Callable[[Any], Any]) -> Callable[[ResourceType, Any], Any]:
    """A rule applying ``fix`` to the ``roles`` of a body or path-less PATCH value."""

    def apply(rt: ResourceType, body: Any) -> Any:
        if isinstance(body, dict) and rt.schema.attribute("roles") is not None:
            for key in body:
                if isinstance(key, str) and key.lower() == "roles":
                    body[key] = fix(body[key])
        return body

    return apply


_resource_roles_as_json = _in_resource_roles(_roles_as_json)
_resource_roles_display_name = _in_resource_roles(_roles_display_name)


RESOURCE_RULES = (
    Rule("string-booleans", 'booleans sent as "True"/"False" strings (Entra)', _resource_booleans),
    Rule(
        "foreign-schema-uris",
        "Microsoft's ADSCIM Group schema URI in a group's schemas (Entra)",
        _foreign_schema_uris,
    ),
    Rule("manager-as-id", "enterprise manager sent as a bare id string (Entra)", _resource_manager),
    Rule(
        "roles-as-json",
        "roles values that are JSON-encoded app roles (Entra)",
        _resource_roles_as_json,
    ),
    Rule(
        "roles-display-name",
        "roles elements naming display displayName (Entra)",
        _resource_roles_display_name,
    ),
)


def normalise_resource(rt: ResourceType, body: Any) -> Any:
    """A POST or PUT body with every applicable rule applied (a copy; ``body`` is untouched)."""
    result = copy.deepcopy(body)
    for rule in RESOURCE_RULES:
        result = rule.apply(rt, result)
    return result


# -- PATCH ---------------------------------------------------------------------------------------


def _leaf(rt: ResourceType, path: str) -> tuple[Attribute | None, Any]:
    """The attribute a PATCH path ends on, and the parsed path (None when it does not parse)."""
    try:
        parsed = parse_patch_path(path)
        resolved = resolve_attr_path(rt, parsed.attr, allow_schema=True)
    except ScimError:
        return None, None
    attribute = resolved.attribute
    if attribute is not None and parsed.sub is not None and attribute.is_complex:
        return attribute.sub(parsed.sub), parsed
    return resolved.leaf, parsed


def _key(obj: dict[str, Any], name: str) -> str | None:
    return next((k for k in obj if isinstance(k, str) and k.lower() == name), None)


def _is_path(key: Any) -> bool:
    """A key of a path-less value object that is a path (``name.givenName``, ``urn:...:x``)."""
    return isinstance(key, str) and ("." in key or ":" in key)


def _each_target(
    rt: ResourceType,
    operation: Any,
    at_path: Callable[[Attribute, Any], Any],
    in_object: Callable[[ResourceType, Any], Any],
) -> Any:
    """Apply one value rule to what an operation writes, whatever its shape: the value of a path
    (``at_path(leaf attribute, value)``), or a path-less value object, whose plain keys are
    attributes (``in_object``, as for a resource body) and whose dotted or URN-qualified keys are
    paths (Entra's ``aadOptscim062020`` shape)."""
    if not isinstance(operation, dict):
        return operation
    value_key = _key(operation, "value")
    if value_key is None:
        return operation
    value = operation[value_key]
    path = get_ci(operation, "path")
    if path is None:
        if isinstance(value, dict):
            body = in_object(rt, value)
            for key in body:
                if _is_path(key):
                    attribute, _ = _leaf(rt, key)
                    if attribute is not None:
                        body[key] = at_path(attribute, body[key])
            operation[value_key] = body
        return operation
    if isinstance(path, str):
        attribute, _ = _leaf(rt, path)
        if attribute is not None:
            operation[value_key] = at_path(attribute, value)
    return operation


def _capitalised_op(rt: ResourceType, operation: Any) -> Any:
    """``"Replace"``, ``"Add"``, ``"Remove"`` (Entra): op names are matched in any case. An
    op that is none of the three in any case stays as sent and is refused by the PATCH engine."""
    if isinstance(operation, dict):
        for key in list(operation):
            if isinstance(key, str) and key.lower() == "op" and isinstance(operation[key], str):
                operation[key] = operation[key].lower()
    return operation


def _operation_booleans(rt: ResourceType, operation: Any) -> Any:
    return _each_target(rt, operation, _boolean_value, _resource_booleans)


def _operation_manager(rt: ResourceType, operation: Any) -> Any:
    def at_path(attribute: Attribute, value: Any) -> Any:
        return _manager_value(value) if _is_manager(rt, attribute) else value

    return _each_target(rt, operation, at_path, _resource_manager)


def _in_operation_roles(
    fix: Callable[[Any], Any], in_resource: Callable[[ResourceType, Any], Any]
) -> Callable[[ResourceType, Any], Any]:
    """A rule applying ``fix`` to the ``roles`` an operation writes, with a path or without."""

    def apply(rt: ResourceType, operation: Any) -> Any:
        def at_path(attribute: Attribute, value: Any) -> Any:
            return fix(value) if _is_roles(rt, attribute) else value

        return _each_target(rt, operation, at_path, in_resource)

    return apply


def _create_through_value_path(rt: ResourceType, operation: Any) -> Any:
    """``replace`` of ``emails[type eq "work"].value`` on a user with no work email (Entra) must
    create that email: as ``add`` it does (RFC 7644 §3.5.2.1), and where the filter matches,
    ``add`` sets the sub-attribute on every match exactly as ``replace`` would.

    Only that shape: a sub-attribute of a multi-valued complex attribute that has a ``type``
    sub-attribute (emails, phoneNumbers, addresses, ... per the schema), selected by one
    ``type eq "<string>"`` comparison. Any other filter that matches nothing stays a 400
    ``noTarget`` (RFC 7644 §3.5.2.3): ``replace roles[value eq "Administrator"].primary`` must
    not grant a role the user does not have."""
    if not isinstance(operation, dict) or get_ci(operation, "op") != "replace":
        return operation
    path = get_ci(operation, "path")
    if _key(operation, "value") is None or not isinstance(path, str):
        return operation
    try:
        parsed = parse_patch_path(path)
        attribute = resolve_attr_path(rt, parsed.attr, allow_schema=True).attribute
    except ScimError:
        return operation
    selector = parsed.value_filter
    if (
        parsed.sub is not None
        and attribute is not None
        and attribute.is_complex
        and attribute.multi_valued
        and attribute.sub("type") is not None
        and isinstance(selector, Compare)
        and selector.op == "eq"
        and selector.path.uri is None
        and selector.path.sub is None
        and selector.path.attr.lower() == "type"
        and isinstance(selector.value, str)
    ):
        op_key = _key(operation, "op")
        assert op_key is not None
        operation[op_key] = "add"
    return operation


#: Applied to each operation in this order (the later rules read the lower-cased op).
PATCH_RULES = (
    Rule("capitalised-ops", "PATCH op names in any case (Entra)", _capitalised_op),
    Rule(
        "string-booleans",
        '"True"/"False" for boolean attributes, with or without a path (Entra)',
        _operation_booleans,
    ),
    Rule("manager-as-id", "enterprise manager as a bare id (Entra)", _operation_manager),
    Rule(
        "roles-as-json",
        "roles values that are JSON-encoded app roles (Entra)",
        _in_operation_roles(_roles_as_json, _resource_roles_as_json),
    ),
    Rule(
        "roles-display-name",
        "roles elements naming display displayName (Entra)",
        _in_operation_roles(_roles_display_name, _resource_roles_display_name),
    ),
    Rule(
        "create-through-value-path",
        'replace through `type eq "..."` that matches nothing creates the element (Entra)',
        _create_through_value_path,
    ),
)


def normalise_patch(rt: ResourceType, body: Any) -> Any:
    """A PatchOp body with every applicable rule applied (a copy; ``body`` is untouched)."""
    result = copy.deepcopy(body)
    operations = get_ci(result, "Operations") if isinstance(result, dict) else None
    if isinstance(operations, list):
        for index, operation in enumerate(operations):
            for rule in PATCH_RULES:
                operation = rule.apply(rt, operation)
            operations[index] = operation
    return result


# -- filters -------------------------------------------------------------------------------------

_QUOTED = re.compile(r'"(?:\\.|[^"\\])*"')
_BARE_VALUE = re.compile(
    r"(?i)(\b(?:eq|ne|co|sw|ew|gt|ge|lt|le)\s+)(?!(?:true|false|null)\b)([^\s\"()\[\]]+)"
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", re.ASCII)


def _quote_bare(segment: str) -> str:
    def quote(match: re.Match[str]) -> str:
        value = match.group(2)
        if _NUMBER.fullmatch(value):
            return match.group(0)
        return f'{match.group(1)}"{value}"'

    return _BARE_VALUE.sub(quote, segment)


def normalise_filter(text: str) -> str:
    """Quote unquoted comparison values (Entra: ``externalId eq jyoung``).

    Only a filter the strict grammar refuses is rewritten, and only if the rewrite parses: a
    valid filter never changes meaning, and anything else keeps its own ``invalidFilter``.
    """
    return _normalised(text)[0]


def parse_normalised_filter(text: str) -> Expr:
    """The filter as :func:`normalise_filter` leaves it, parsed: once, when it is valid as sent
    (parsing it twice, to check and then to use, was a sixth of a ``userName eq`` request).
    Raises the refusal of the filter as sent when no rewrite helps."""
    _, parsed = _normalised(text)
    if isinstance(parsed, ScimError):
        raise parsed
    return parsed


def _normalised(text: str) -> tuple[str, Expr | ScimError]:
    """The filter to use, and its parse (or the refusal of the filter as sent)."""
    try:
        return text, parse_filter(text)
    except ScimError as refusal:
        original = refusal
    pieces: list[str] = []
    position = 0
    for quoted in _QUOTED.finditer(text):
        pieces.append(_quote_bare(text[position : quoted.start()]))
        pieces.append(quoted.group(0))
        position = quoted.end()
    pieces.append(_quote_bare(text[position:]))
    rewritten = "".join(pieces)
    try:
        return rewritten, parse_filter(rewritten)
    except ScimError:
        return text, original
