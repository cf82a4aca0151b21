"""Where a ``bulkId:<id>`` reference may stand in a bulk operation, decided by the schemas.

RFC 7644 §3.7.2: a reference stands for the id of a resource created earlier in the request, so
it can only be where a resource id goes — the operation's ``path`` (``services.bulk``), and the
``value`` sub-attribute of a complex attribute whose ``$ref`` names a resource type /Bulk creates
(Group ``members``, enterprise ``manager``; read from ``schemas/*.json``, not listed here).
Attributes the server owns (``readOnly``, such as a user's ``groups``) are ignored on input, so
their values reference nothing. Everywhere else a string that looks like ``bulkId:x`` is plain
data: a ``password`` or a ``displayName`` is never read as a reference, never substituted and so
never echoed in an "unresolved reference" error. The prefix is matched exactly, case included.

In PATCH data the same positions are found through the operations' paths: ``members``,
``manager``, ``manager.value``, an extension URN, path-less value objects (their plain and
dotted/URN keys), and the one comparison ``members[value eq "bulkId:x"]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any

from scim_server.scim.errors import ScimError
from scim_server.scim.filter import parse_patch_path
from scim_server.scim.filter_ast import Compare, PatchPath
from scim_server.scim.filter_eval import resolve_attr_path
from scim_server.scim.schema import Attribute, ResourceType, Schema

REFERENCE_PREFIX = "bulkId:"

#: Called with each reference string (``bulkId:<id>``) found; returns what replaces it.
Mapper = Callable[[str], str]


def reference_of(value: Any) -> str | None:
    """The bulkId ``value`` references, if it is a whole ``bulkId:<id>`` string."""
    if isinstance(value, str) and value.startswith(REFERENCE_PREFIX):
        return value[len(REFERENCE_PREFIX) :] or None
    return None


def holds_references(attribute: Attribute | None, served: Collection[str]) -> bool:
    """Whether ``attribute``'s ``value`` sub-attribute is the id of a resource /Bulk creates."""
    if attribute is None or not attribute.is_complex or attribute.mutability == "readOnly":
        return False
    ref = attribute.sub("$ref")
    return (
        attribute.sub("value") is not None
        and ref is not None
        and any(name in served for name in ref.reference_types)
    )


def map_references(
    rt: ResourceType, method: str, data: Any, served: Collection[str], mapper: Mapper
) -> Any:
    """``data`` of a POST/PUT (a resource) or PATCH (a PatchOp) with every reference passed
    through ``mapper`` (a copy where something changed; ``data`` itself is never modified)."""
    walker = _Walker(rt, served, mapper)
    if method == "PATCH":
        return walker.patch(data)
    if method in ("POST", "PUT"):
        return walker.resource(data)
    return data


def _key(obj: dict[Any, Any], name: str) -> str | None:
    """The key of ``obj`` that is ``name`` in any case (RFC 7643 §2.1)."""
    return next((k for k in obj if isinstance(k, str) and k.lower() == name), None)


class _Walker:
    def __init__(self, rt: ResourceType, served: Collection[str], mapper: Mapper) -> None:
        self.rt = rt
        self.served = served
        self.mapper = mapper

    def string(self, value: Any) -> Any:
        return self.mapper(value) if reference_of(value) is not None else value

    def element(self, value: Any) -> Any:
        """One value of a reference attribute: ``{"value": ...}``, or a bare id (Entra)."""
        if isinstance(value, dict):
            return {
                key: self.string(item) if isinstance(key, str) and key.lower() == "value" else item
                for key, item in value.items()
            }
        return self.string(value)

    def attribute(self, attribute: Attribute | None, value: Any) -> Any:
        if not holds_references(attribute, self.served):
            return value
        if isinstance(value, list):
            return [self.element(item) for item in value]
        return self.element(value)

    def attributes(self, schema: Schema, holder: Any) -> Any:
        if not isinstance(holder, dict):
            return holder
        return {
            key: self.attribute(schema.attribute(key), item) if isinstance(key, str) else item
            for key, item in holder.items()
        }

    def resource(self, body: Any) -> Any:
        """A resource: core attributes at the top, extension attributes under their URN key; in
        a path-less PATCH value, dotted and URN-qualified keys are paths."""
        if not isinstance(body, dict):
            return body
        result: dict[Any, Any] = {}
        for key, item in body.items():
            if not isinstance(key, str):
                result[key] = item
                continue
            extension = self.rt.schema_for_urn(key)
            if extension is not None and extension is not self.rt.schema:
                result[key] = self.attributes(extension, item)
            elif ("." in key or ":" in key) and self.rt.schema.attribute(key) is None:
                result[key] = self.at_path(key, item)[1]
            else:
                result[key] = self.attribute(self.rt.schema.attribute(key), item)
        return result

    def at_path(self, path: str, value: Any) -> tuple[str, Any]:
        """A PATCH operation's path and value, references mapped in both."""
        try:
            parsed = parse_patch_path(path)
            resolved = resolve_attr_path(self.rt, parsed.attr, allow_schema=True)
        except ScimError:
            return path, value  # the PATCH engine answers it with its own 400
        if resolved.attribute is None:  # a whole extension
            return path, self.attributes(resolved.schema, value)
        attribute = resolved.attribute
        if not holds_references(attribute, self.served):
            return path, value
        path = self._filter(path, parsed)
        sub = parsed.sub or (resolved.sub.name if resolved.sub is not None else None)
        if sub is None:
            return path, self.attribute(attribute, value)
        if sub.lower() == "value":
            return path, self.string(value)
        return path, value

    def _filter(self, path: str, parsed: PatchPath) -> str:
        """``members[value eq "bulkId:x"]``: the one filter shape naming a member by id."""
        found = parsed.value_filter
        if not (
            isinstance(found, Compare)
            and found.op == "eq"
            and found.path.sub is None
            and found.path.attr.lower() == "value"
            and reference_of(found.value) is not None
        ):
            return path
        assert isinstance(found.value, str)
        quoted = json.dumps(found.value)
        return path.replace(quoted, json.dumps(self.mapper(found.value)))

    def patch(self, body: Any) -> Any:
        if not isinstance(body, dict):
            return body
        result = dict(body)
        key = _key(body, "operations")
        if key is not None and isinstance(body[key], list):
            result[key] = [self.operation(operation) for operation in body[key]]
        return result

    def operation(self, operation: Any) -> Any:
        if not isinstance(operation, dict):
            return operation
        path_key = _key(operation, "path")
        value_key = _key(operation, "value")
        path = operation.get(path_key) if path_key is not None else None
        value = operation.get(value_key) if value_key is not None else None
        result = dict(operation)
        if path is None:
            if value_key is not None:
                result[value_key] = self.resource(value)
            return result
        if not isinstance(path, str):
            return result
        new_path, new_value = self.at_path(path, value)
        assert path_key is not None
        result[path_key] = new_path
        if value_key is not None:
            result[value_key] = new_value
        return result
