"""IdP dialects (DESIGN §4.1): known deviations from RFC 7644, normalised in one place.

Okta and Microsoft Entra ID send requests the RFC does not quite allow. Each deviation is one
small named rule here, applied to the parsed request before the generic code sees it, chosen by
what the request *contains* — never by guessing the client from its User-Agent. A request a rule
cannot make sense of is left as it is, so the generic code answers it with a clear 400.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scim_server.scim.errors import ScimError
from scim_server.scim.filter import parse_filter, parse_patch_path
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


# -- resources (POST/PUT bodies, PATCH value objects) ------------------------------------------


def _booleans_in(attributes: Any, value: Any) -> Any:
    """``"True"``/``"false"`` where the schema says boolean, at any depth (Entra)."""
    if not isinstance(value, dict):
        return value
    for key, item in list(value.items()):
        attribute = attributes(key) if isinstance(key, str) else None
        if attribute is None:
            continue
        value[key] = _boolean_value(attribute, item)
    return value


def _boolean_value(attribute: Attribute, item: Any) -> Any:
    if attribute.type == "boolean" and isinstance(item, str) and item.lower() in _BOOLEANS:
        return _BOOLEANS[item.lower()]
    if attribute.is_complex:
        if isinstance(item, list):
            return [_booleans_in(attribute.sub, element) for element in item]
        return _booleans_in(attribute.sub, item)
    return item


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


def _manager_object(value: Any) -> Any:
    return {"value": value} if isinstance(value, str) else value


def _resource_manager(rt: ResourceType, body: Any) -> Any:
    holder = get_ci(body, ENTERPRISE_USER) if isinstance(body, dict) else None
    if isinstance(holder, dict):
        for key in holder:
            if key.lower() == "manager":
                holder[key] = _manager_object(holder[key])
    return body


RESOURCE_RULES = (
    Rule("string-booleans", 'booleans sent as "True"/"False" strings (Entra)', _resource_booleans),
    Rule(
        "foreign-schema-uris",
        "Microsoft's ADSCIM Group schema URI in a group's schemas (Entra)",
        _foreign_schema_uris,
    ),
    Rule("manager-as-id", "enterprise manager sent as a bare id string (Entra)", _resource_manager),
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


def _patch_operation(rt: ResourceType, operation: Any) -> Any:
    if not isinstance(operation, dict):
        return operation
    for key in list(operation):
        # capitalised ops (Entra: "Replace", "Add", "Remove")
        if key.lower() == "op" and isinstance(operation[key], str):
            operation[key] = operation[key].lower()
    path = get_ci(operation, "path")
    value_key = next((k for k in operation if isinstance(k, str) and k.lower() == "value"), None)
    if value_key is None:
        return operation
    value = operation[value_key]
    if path is None:
        # a path-less value object: its keys are attributes (or paths, or extension URNs)
        if isinstance(value, dict):
            body = _resource_booleans(rt, {"schemas": [], **value})
            body.pop("schemas", None)
            operation[value_key] = _resource_manager(rt, body)
        return operation
    if not isinstance(path, str):
        return operation
    attribute, parsed = _leaf(rt, path)
    if attribute is None:
        return operation
    operation[value_key] = _boolean_value(attribute, value)
    if attribute.name.lower() == "manager" and parsed.attr.uri is not None:
        operation[value_key] = _manager_object(operation[value_key])
    # a write through a value path that matches nothing must create the entry (Entra:
    # replace emails[type eq "work"].value on a user without a work email)
    op = get_ci(operation, "op")
    if op == "replace" and parsed.value_filter is not None and parsed.sub is not None:
        for key in operation:
            if key.lower() == "op":
                operation[key] = "add"
    return operation


def normalise_patch(rt: ResourceType, body: Any) -> Any:
    """A PatchOp body with every applicable rule applied (a copy; ``body`` is untouched)."""
    result = copy.deepcopy(body)
    operations = get_ci(result, "Operations") if isinstance(result, dict) else None
    if isinstance(operations, list):
        for index, operation in enumerate(operations):
            operations[index] = _patch_operation(rt, operation)
    return result


PATCH_RULES = (
    "capitalised-ops: PATCH op names in any case (Entra)",
    'string-booleans: "True"/"False" for boolean attributes, with or without a path (Entra)',
    "manager-as-id: enterprise manager as a bare id (Entra)",
    "create-through-value-path: replace through a value path that matches nothing creates the"
    " element (Entra)",
)


# -- filters -------------------------------------------------------------------------------------

_QUOTED = re.compile(r'"(?:\\.|[^"\\])*"')
_BARE_VALUE = re.compile(
    r"(?i)(\b(?:eq|ne|co|sw|ew|gt|ge|lt|le)\s+)(?!(?:true|false|null)\b)([^\s\"()\[\]]+)"
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


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
    try:
        parse_filter(text)
        return text
    except ScimError:
        pass
    pieces: list[str] = []
    position = 0
    for quoted in _QUOTED.finditer(text):
        pieces.append(_quote_bare(text[position : quoted.start()]))
        pieces.append(quoted.group(0))
        position = quoted.end()
    pieces.append(_quote_bare(text[position:]))
    rewritten = "".join(pieces)
    try:
        parse_filter(rewritten)
    except ScimError:
        return text
    return rewritten
