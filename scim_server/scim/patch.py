"""The PATCH engine (RFC 7644 §3.5.2): apply a PatchOp request to a canonical document, purely.

:func:`apply_patch` validates the PatchOp envelope, applies every operation in order to a deep
copy of the document, and returns the copy; any error raises and nothing is returned, so a
request is applied atomically or not at all (RFC 7644 §3.5.2: "each operation ... MUST be
applied ... if any operation fails, the original resource SHALL be left unchanged").

Types, required attributes and immutability are checked afterwards by
``scim.validate.parse_resource(rt, result, existing=doc)``; this module only needs the shape of
each attribute (single or multi-valued, simple or complex) and its mutability.

Decisions where RFC 7644 §3.5.2 leaves room, each with a test:

- ``add`` to a multi-valued attribute skips an element that is already there. Elements of a
  complex attribute with a ``value`` sub-attribute are the same element when their ``value``
  is equal and their ``type`` too (when both carry one); the new element's sub-attributes are
  then merged into the existing one, so re-adding a member is a no-op and re-adding an email
  with ``primary: true`` makes it primary without a duplicate.
- ``add`` through a value filter (``emails[type eq "work"].value``) sets the sub-attribute on
  every matching element; when none matches, the target does not exist and is added
  (RFC 7644 §3.5.2.1): a new element is built from the filter's ``eq`` clauses
  (``{"type": "work", "value": ...}``). A filter that does not describe one element
  (``or``, ``co``, ...) answers ``noTarget``.
- A value filter reads an element without ``primary`` as ``primary: false`` (RFC 7643 §2.4), as
  a ``GET ?filter=`` does: ``remove emails[primary eq false]`` removes the emails that are not
  primary, whether they say ``false`` or nothing. Nothing writes the assumed ``false``.
- ``replace`` through a value filter without sub-attribute replaces each matching element
  wholesale with the value ("all matching record values SHALL be replaced"); no match is
  ``noTarget`` (RFC 7644 §3.5.2.3). ``replace`` of a single-valued complex attribute merges
  ("sub-attributes that are not specified in the value are left unchanged").
- A sub-attribute of a multi-valued attribute without filter (``emails.value``) targets every
  element (replace: "all values"; remove: "all values are removed").
- ``remove`` of a multi-valued attribute with a ``value`` (``{"op": "remove", "path":
  "members", "value": [{"value": "id"}]}``, sent by Entra) removes the elements each given item
  describes: every non-null sub-attribute of the item equals the element's. A ``value`` on the
  removal of a single-valued attribute is ignored.
- ``null`` as a value unassigns (RFC 7643 §2.5); ``add`` of ``null`` or ``[]`` to a
  multi-valued attribute adds nothing.
- A ``readOnly`` attribute named by ``path`` is refused (``mutability``); inside a value object
  (a path-less operation, a whole extension, a complex value being merged) it is ignored, as on
  PUT (DESIGN §5.4), because Okta echoes ``id``, ``meta`` and ``groups`` back. ``schemas`` is
  recomputed from the extensions that have values and cannot be patched itself.
- A whole extension (``path`` = its URN) is an object of its attributes; removing it removes the
  attributes a client may write and leaves those the server owns.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scim_server.scim.errors import (
    InvalidFilter,
    InvalidPath,
    InvalidSyntax,
    InvalidValue,
    Mutability,
    NoTarget,
    ScimError,
)
from scim_server.scim.filter import client_text, never_returned_name_in, parse_patch_path
from scim_server.scim.filter_ast import And, Compare, Expr, PatchPath
from scim_server.scim.filter_eval import (
    COMMON_ATTRIBUTES,
    ResolvedPath,
    compile_element_filter,
    get_ci,
    resolve_attr_path,
)
from scim_server.scim.schema import Attribute, ResourceType, Schema
from scim_server.scim.validate import parse_datetime

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
OPERATIONS = ("add", "remove", "replace")

_MAX_SHOWN = 100
_Doc = dict[str, Any]


@dataclass(frozen=True)
class Operation:
    index: int
    op: str
    path: str | None
    value: Any

    @property
    def label(self) -> str:
        where = ""
        if self.path is not None:
            secret = never_returned_name_in(self.path)
            where = f" {_cut(self.path)}" if secret is None else f" a path naming {secret}"
        return f"Operations[{self.index}] ({self.op}{where})"


def apply_patch(rt: ResourceType, doc: dict[str, Any], body: object) -> dict[str, Any]:
    """Apply the PatchOp request ``body`` to ``doc`` (a canonical document of ``rt``).

    Returns a new document; ``doc`` and ``body`` are never modified. Raises InvalidSyntax for a
    malformed request, InvalidValue for a value the operation cannot use, InvalidPath for an
    unknown attribute or bad path, NoTarget (RFC 7644 §3.5.2.2, §3.5.2.3) and Mutability; the
    detail names the operation (``Operations[2]``) and the attribute.
    """
    return apply_operations(rt, doc, parse_operations(body))


def apply_operations(
    rt: ResourceType, doc: dict[str, Any], operations: list[Operation]
) -> dict[str, Any]:
    """Apply already parsed operations (see :func:`parse_operations`) to a copy of ``doc``."""
    result = copy.deepcopy(doc)
    for operation in operations:
        try:
            _apply(rt, result, operation)
        except ScimError as exc:
            raise type(exc)(
                _failure_detail(rt, operation, exc.detail), headers=exc.headers
            ) from None
    _sync_schemas(rt, result)
    return result


def _failure_detail(rt: ResourceType, operation: Operation, detail: str) -> str:
    """``Operations[i] (op path): detail`` — except for a path into a write-only attribute
    (``returned: never``, the password) that is more than its name: its text may hold the secret
    (``password[value eq "..."]``), and secrets never reach a response or an event (DESIGN §7),
    so the detail names the attribute and the rule instead."""
    name = _write_only_target(rt, operation.path)
    if name is None:
        return f"{operation.label}: {detail}"
    return (
        f"Operations[{operation.index}] ({operation.op} {name}): {name} is a write-only "
        f'attribute; it takes no value filter or sub-attribute, write it with path "{name}" '
        "(the path is not shown: it may hold the secret)"
    )


def _write_only_target(rt: ResourceType, path: str | None) -> str | None:
    """The name of the write-only attribute ``path`` starts with, if the path is more than it."""
    if path is None:
        return None
    schema, rest = rt.split_urn_path(path.strip())
    end = next((i for i, char in enumerate(rest) if not (char.isalnum() or char in "_-$")), None)
    name = rest if end is None else rest[:end]
    attribute = (schema or rt.schema).attribute(name) if name else None
    if attribute is None or attribute.returned != "never" or rest == name:
        return None
    return attribute.name


# --- the envelope -------------------------------------------------------------------------------


def parse_operations(body: object) -> list[Operation]:
    """Check the PatchOp message (RFC 7644 §3.5.2) and return its operations.

    Public so that a resource whose multi-valued attribute lives outside its document (group
    members) can route those operations itself and apply the rest here.
    """
    if not isinstance(body, dict):
        raise InvalidSyntax("a PATCH body must be a JSON object (a PatchOp message)")
    schemas = get_ci(body, "schemas")
    if not isinstance(schemas, list) or PATCH_OP.lower() not in {
        s.lower() for s in schemas if isinstance(s, str)
    }:
        raise InvalidSyntax(f'a PATCH body must list "{PATCH_OP}" in "schemas"')
    raw = get_ci(body, "Operations")
    if not isinstance(raw, list) or not raw:
        raise InvalidSyntax('a PATCH body must have a non-empty "Operations" array')
    operations = []
    for index, item in enumerate(raw):
        where = f"Operations[{index}]"
        if not isinstance(item, dict):
            raise InvalidSyntax(f'{where} must be a JSON object with an "op"')
        op = get_ci(item, "op")
        if op not in OPERATIONS:
            shown = "missing" if op is None else _shown(op if isinstance(op, str) else repr(op))
            raise InvalidSyntax(
                f'{where}: "op" must be one of "add", "remove", "replace", got {shown}'
            )
        path = get_ci(item, "path")
        if path is not None and not isinstance(path, str):
            raise InvalidSyntax(f'{where}: "path" must be a string')
        has_value = any(isinstance(k, str) and k.lower() == "value" for k in item)
        value = get_ci(item, "value")
        if op in {"add", "replace"} and not has_value:
            raise InvalidValue(f'{where} ({op}): a "value" is required (RFC 7644 §3.5.2)')
        operations.append(Operation(index, op, path, value))
    return operations


def _apply(rt: ResourceType, doc: _Doc, operation: Operation) -> None:
    if operation.path is None:
        if operation.op == "remove":
            raise NoTarget('remove needs a "path" (RFC 7644 §3.5.2.2)')
        _apply_object(rt, doc, operation.op, operation.value, schema=None)
        return
    path = parse_patch_path(operation.path)
    _apply_path(rt, doc, operation.op, path, operation.value, in_object=False)


def _apply_object(
    rt: ResourceType, doc: _Doc, op: str, value: object, *, schema: Schema | None
) -> None:
    """A path-less add/replace (or one on a whole extension): each key is a path.

    Keys are attribute names, dotted sub-attributes (``name.givenName``), URN-qualified paths
    (``urn:...:enterprise:2.0:User:employeeNumber``) or an extension URN whose value is an object
    of that extension's attributes (RFC 7644 §3.5.2.1, §3.5.2.3: "the target is assumed to be
    the resource itself").
    """
    where = "the extension object" if schema is not None else '"value" without "path"'
    if not isinstance(value, dict):
        raise InvalidValue(f"{where} must be a JSON object of attributes, got {_json_type(value)}")
    _refuse_keys_twice(value, prefix="" if schema is None else f"{schema.id}:")
    for key, item in value.items():
        if key.lower() == "schemas":
            # Recomputed from the extensions present. Clients that serialise an extension as
            # its own object (scim2-models does) put a "schemas" key inside it too.
            continue
        if schema is None and (ext := rt.schema_for_urn(key)) is not None:
            if ext is rt.schema:
                _apply_object(rt, doc, op, item, schema=None)
            else:
                _apply_extension(rt, doc, op, ext, item)
            continue
        text = key if schema is None else f"{schema.id}:{key}"
        try:
            path = parse_patch_path(text)
        except InvalidPath:
            shown = _shown(text) if never_returned_name_in(text) is None else client_text(text)
            raise InvalidPath(f"{shown} is not an attribute path") from None
        _apply_path(rt, doc, op, path, item, in_object=True)


def _apply_extension(rt: ResourceType, doc: _Doc, op: str, ext: Schema, value: object) -> None:
    """add/replace/remove with a whole extension as the target (RFC 7643 §3.3)."""
    if op == "remove" or value is None:
        if op == "add":
            return
        container = get_ci(doc, ext.id)
        if isinstance(container, dict):
            for attribute in ext.attributes:
                if attribute.mutability != "readOnly":
                    _pop(container, attribute.name)
        return
    _apply_object(rt, doc, op, value, schema=ext)


# --- one path -----------------------------------------------------------------------------------


def _apply_path(
    rt: ResourceType, doc: _Doc, op: str, path: PatchPath, value: Any, *, in_object: bool
) -> None:
    resolved = resolve_attr_path(rt, path.attr, error=InvalidPath, allow_schema=True)
    if resolved.attribute is None:
        if path.value_filter is not None:
            raise InvalidPath(f"{_shown(str(path.attr))} is a schema URN, not an attribute")
        _apply_extension(rt, doc, op, resolved.schema, value)
        return
    attribute = resolved.attribute
    sub = resolved.sub
    if path.value_filter is not None and path.sub is not None:
        sub = _sub_attribute(attribute, path.sub)
    if not _writable(attribute, sub, in_object=in_object):
        return
    container = _Container(doc, resolved)

    if path.value_filter is not None:
        _apply_filtered(container, attribute, path, sub, op, value)
    elif sub is not None:
        _apply_sub(container, attribute, sub, op, value)
    elif op == "remove":
        _remove(container, attribute, value)
    elif attribute.multi_valued:
        items = _items(attribute, value)
        if op == "add":
            _add_elements(container, attribute, items)
        else:
            container.set(attribute.name, items)
    elif attribute.is_complex:
        if value is None:
            container.pop(attribute.name)
            return
        current = container.get(attribute.name)
        target = dict(current) if isinstance(current, dict) else {}
        _merge(attribute, target, value)
        container.set(attribute.name, target)
    elif value is None:
        container.pop(attribute.name)
    else:
        _check_simple(attribute, attribute.name, value)
        container.set(attribute.name, copy.deepcopy(value))


def _writable(attribute: Attribute, sub: Attribute | None, *, in_object: bool) -> bool:
    """False for a readOnly target inside a value object; Mutability when named by ``path``."""
    if attribute is COMMON_ATTRIBUTES["schemas"]:
        if in_object:
            return False
        raise Mutability('"schemas" is computed from the extensions present and cannot be patched')
    read_only = attribute.mutability == "readOnly" or (
        sub is not None and sub.mutability == "readOnly"
    )
    if read_only:
        if in_object:
            return False
        name = attribute.name if sub is None else f"{attribute.name}.{sub.name}"
        raise Mutability(f"attribute {_shown(name)} is readOnly and cannot be modified")
    return True


class _Container:
    """The object holding an attribute: the document, or the object under an extension URN."""

    def __init__(self, doc: _Doc, resolved: ResolvedPath) -> None:
        self.doc = doc
        self.urn = resolved.schema.id if resolved.is_extension else None

    def _object(self, create: bool) -> _Doc | None:
        if self.urn is None:
            return self.doc
        current = get_ci(self.doc, self.urn)
        if isinstance(current, dict):
            return current
        if not create:
            return None
        fresh: _Doc = {}
        _put(self.doc, self.urn, fresh)
        return fresh

    def get(self, name: str) -> Any:
        return get_ci(self._object(create=False), name)

    def set(self, name: str, value: Any) -> None:
        if value is None or value == []:
            self.pop(name)
            return
        target = self._object(create=True)
        assert target is not None
        _put(target, name, value)

    def pop(self, name: str) -> None:
        target = self._object(create=False)
        if target is not None:
            _pop(target, name)


# --- targets ------------------------------------------------------------------------------------


def _apply_sub(
    container: _Container, attribute: Attribute, sub: Attribute, op: str, value: Any
) -> None:
    """``name.givenName`` or (every element of) ``emails.value``, without a value filter."""
    current = container.get(attribute.name)
    if not attribute.multi_valued:
        parent = dict(current) if isinstance(current, dict) else {}
        if op == "remove" or value is None:
            _pop(parent, sub.name)
        else:
            _check_simple(sub, f"{attribute.name}.{sub.name}", value)
            _put(parent, sub.name, copy.deepcopy(value))
        container.set(attribute.name, parent or None)
        return
    elements = _as_list(current)
    if op == "remove" or value is None:
        for element in elements:
            if isinstance(element, dict):
                _pop(element, sub.name)
        container.set(attribute.name, [e for e in elements if e != {}])
        return
    _check_simple(sub, f"{attribute.name}.{sub.name}", value)
    if not any(isinstance(e, dict) for e in elements):
        elements.append({})  # the target does not exist: add it (RFC 7644 §3.5.2.1, §3.5.2.3)
    written = []
    for element in elements:
        if isinstance(element, dict):
            _put(element, sub.name, copy.deepcopy(value))
            written.append(element)
    container.set(attribute.name, elements)
    _clear_other_primaries(attribute, elements, written)


def _apply_filtered(
    container: _Container,
    attribute: Attribute,
    path: PatchPath,
    sub: Attribute | None,
    op: str,
    value: Any,
) -> None:
    """``attr[filter]`` and ``attr[filter].sub`` (RFC 7644 §3.5.2 ``valuePath``)."""
    assert path.value_filter is not None
    if not (attribute.is_complex and attribute.multi_valued):
        raise InvalidPath(
            f"{_shown(str(path.attr))} is not a multi-valued complex attribute, so it cannot "
            "take a value filter"
        )
    predicate = _element_predicate(attribute, path.value_filter)
    elements = _as_list(container.get(attribute.name))
    matched = [e for e in elements if isinstance(e, dict) and predicate(e)]

    if not matched:
        if op == "remove" or (op == "add" and value is None):
            return  # nothing to remove, nothing to add
        if op == "replace":
            raise NoTarget(
                f"no value of {_shown(attribute.name)} matches the filter of the path "
                "(RFC 7644 §3.5.2.3)"
            )
        created = _element_from_filter(attribute, path.value_filter)
        if created is None:
            raise NoTarget(
                f"no value of {_shown(attribute.name)} matches the filter of the path, and the "
                "filter does not describe a new one (only 'eq' clauses joined by 'and' do)"
            )
        elements.append(created)
        matched = [created]

    if sub is not None:
        # The sub-attribute of every matching value; null or remove unassigns it.
        if op == "remove" or value is None:
            for element in matched:
                _pop(element, sub.name)
        else:
            _check_simple(sub, f"{attribute.name}.{sub.name}", value)
            for element in matched:
                _put(element, sub.name, copy.deepcopy(value))
    elif op == "remove" or value is None:
        # remove, or replace with null (RFC 7643 §2.5: null is unassigned)
        elements = [e for e in elements if not any(e is m for m in matched)]
        matched = []
    elif op == "replace":
        # "all matching record values SHALL be replaced" (RFC 7644 §3.5.2.3)
        replacements = {id(m): _element(attribute, value, must_be_object=True) for m in matched}
        elements = [replacements.get(id(e), e) for e in elements]
        matched = list(replacements.values())
    else:
        for element in matched:
            _merge(attribute, element, value)
    container.set(attribute.name, [e for e in elements if e != {}])
    _clear_other_primaries(attribute, elements, matched)


def _element_predicate(attribute: Attribute, expr: Expr) -> Callable[[Any], bool]:
    try:
        return compile_element_filter(attribute, expr)
    except InvalidFilter as exc:
        raise InvalidPath(
            f"invalid value filter for {_shown(attribute.name)}: {exc.detail}"
        ) from None


def _element_from_filter(attribute: Attribute, expr: Expr) -> _Doc | None:
    """The element ``attr[a eq 1 and b eq 2]`` describes, or None if it describes no single one."""
    if isinstance(expr, And):
        left = _element_from_filter(attribute, expr.left)
        right = _element_from_filter(attribute, expr.right)
        if left is None or right is None or set(left) & set(right):
            return None
        return {**left, **right}
    if isinstance(expr, Compare) and expr.op == "eq" and expr.value is not None:
        sub = attribute.sub(expr.path.attr)
        if sub is None:  # pragma: no cover - the compiled filter already resolved it
            return None
        return {sub.name: expr.value}
    return None


def _remove(container: _Container, attribute: Attribute, value: Any) -> None:
    """remove without filter: the attribute, or (multi-valued with a value) the given elements."""
    if not attribute.multi_valued or value is None:
        container.pop(attribute.name)
        return
    items = value if isinstance(value, list) else [value]
    if attribute.is_complex:
        for item in items:
            if not isinstance(item, dict):
                raise InvalidValue(
                    f"each value to remove from {_shown(attribute.name)} must be an object such "
                    f'as {{"value": "..."}}, got {_json_type(item)}'
                )
    elements = _as_list(container.get(attribute.name))
    kept = [e for e in elements if not any(_describes(attribute, i, e) for i in items)]
    container.set(attribute.name, kept)


def _describes(attribute: Attribute, item: Any, element: Any) -> bool:
    """Whether a removal item names ``element``: each non-null sub-attribute of it is equal."""
    if not attribute.is_complex:
        return _equal(attribute, item, element)
    if not isinstance(element, dict):
        return False
    given = {k: v for k, v in item.items() if v is not None}
    if not given:
        return False
    for key, wanted in given.items():
        sub = attribute.sub(key)
        if sub is None:
            raise InvalidPath(f"unknown attribute {_shown(f'{attribute.name}.{key}')}")
        if not _equal(sub, wanted, get_ci(element, sub.name)):
            return False
    return True


def _add_elements(container: _Container, attribute: Attribute, items: list[Any]) -> None:
    """RFC 7644 §3.5.2.1: add to a multi-valued attribute; an element already there is merged."""
    elements = _as_list(container.get(attribute.name))
    written: list[Any] = []
    for item in items:
        same = next((e for e in elements if _same_element(attribute, item, e)), None)
        if same is None:
            elements.append(item)
            written.append(item)
        elif isinstance(same, dict) and isinstance(item, dict):
            for key, sub_value in item.items():
                if sub_value is not None:
                    _put(same, key, sub_value)
            written.append(same)
    container.set(attribute.name, elements)
    _clear_other_primaries(attribute, elements, written)


def _same_element(attribute: Attribute, new: Any, old: Any) -> bool:
    if not attribute.is_complex:
        return _equal(attribute, new, old)
    if not isinstance(new, dict) or not isinstance(old, dict):
        return False
    value_sub = attribute.sub("value")
    if value_sub is not None and get_ci(new, "value") is not None:
        if not _equal(value_sub, get_ci(new, "value"), get_ci(old, "value")):
            return False
        type_sub = attribute.sub("type")
        new_type, old_type = get_ci(new, "type"), get_ci(old, "type")
        return (
            type_sub is None
            or new_type is None
            or old_type is None
            or (_equal(type_sub, new_type, old_type))
        )
    present = {k: v for k, v in new.items() if v is not None}
    current = {k: v for k, v in old.items() if v is not None}
    return set(present) == set(current) and all(
        _equal(attribute.sub(k) or attribute, v, current[k]) for k, v in present.items()
    )


def _clear_other_primaries(attribute: Attribute, elements: list[Any], written: list[Any]) -> None:
    """RFC 7643 §2.4: at most one ``primary: true``; a new primary demotes the others."""
    if attribute.sub("primary") is None:
        return
    if not any(isinstance(e, dict) and get_ci(e, "primary") is True for e in written):
        return
    for element in elements:
        others = isinstance(element, dict) and not any(element is w for w in written)
        if others and get_ci(element, "primary") is True:
            _put(element, "primary", False)


# --- values -------------------------------------------------------------------------------------


def _items(attribute: Attribute, value: Any) -> list[Any]:
    """The elements a value brings to a multi-valued attribute (a list, or one element)."""
    if value is None:
        return []
    raw = value if isinstance(value, list) else [value]
    return [_element(attribute, item, must_be_object=False) for item in raw if item is not None]


def _element(attribute: Attribute, item: Any, *, must_be_object: bool) -> Any:
    """One element with sub-attribute keys in canonical spelling; unknown keys refused."""
    if not attribute.is_complex:
        _check_simple(attribute, attribute.name, item)
        return copy.deepcopy(item)
    if not isinstance(item, dict):
        if must_be_object:
            raise InvalidValue(
                f"a value of {_shown(attribute.name)} must be an object of its sub-attributes, "
                f"got {_json_type(item)}"
            )
        return copy.deepcopy(item)  # validate.parse_resource names the type error
    element: _Doc = {}
    for key, sub_value in item.items():
        sub = _sub_attribute(attribute, key)
        if sub.name in element:
            raise InvalidSyntax(
                f"attribute {_shown(f'{attribute.name}.{sub.name}')} is given twice in "
                "different case; attribute names are case-insensitive"
            )
        element[sub.name] = copy.deepcopy(sub_value)
    return element


def _merge(attribute: Attribute, target: _Doc, value: Any) -> None:
    """Merge an object into a complex value: given sub-attributes replace, null ones unassign.

    readOnly sub-attributes in the object are ignored (``manager.displayName``).
    """
    if not isinstance(value, dict):
        raise InvalidValue(
            f"the value of {_shown(attribute.name)} must be an object of its sub-attributes, "
            f"got {_json_type(value)}"
        )
    _refuse_keys_twice(value, prefix=f"{attribute.name}.")
    for key, sub_value in value.items():
        sub = _sub_attribute(attribute, key)
        if sub.mutability == "readOnly":
            continue
        if sub_value is None:
            _pop(target, sub.name)
        else:
            _put(target, sub.name, copy.deepcopy(sub_value))


def _refuse_keys_twice(value: dict[str, Any], *, prefix: str) -> None:
    """One attribute named twice in different case (RFC 7643 §2.1: names are case-insensitive)
    is refused, as in a POST or PUT body: which one won would depend on the JSON key order."""
    seen: dict[str, str] = {}
    for key in value:
        first = seen.setdefault(key.lower(), key)
        if first != key:
            raise InvalidSyntax(
                f"attribute {_shown(prefix + first)} is given twice in different case "
                f"({_shown(first)} and {_shown(key)}); attribute names are case-insensitive"
            )


def _sub_attribute(attribute: Attribute, name: str) -> Attribute:
    sub = attribute.sub(name) if isinstance(name, str) else None
    if sub is None:
        names = ", ".join(s.name for s in attribute.sub_attributes) or "none"
        raise InvalidPath(
            f"unknown attribute {_shown(f'{attribute.name}.{name}')}: the sub-attributes of "
            f"{attribute.name} are {names}"
        )
    return sub


def _check_simple(attribute: Attribute, name: str, value: Any) -> None:
    """A simple attribute cannot take an object or array (types are checked by validate)."""
    if isinstance(value, dict | list):
        raise InvalidValue(
            f"attribute {_shown(name)} takes a single {attribute.type} value, "
            f"got {_json_type(value)}"
        )


def _equal(attribute: Attribute, left: Any, right: Any) -> bool:
    """SCIM equality: caseExact=false strings case-insensitively, dateTimes as instants."""
    if isinstance(left, str) and isinstance(right, str):
        if attribute.type == "dateTime":
            try:
                return parse_datetime(left) == parse_datetime(right)
            except ValueError:
                return left == right
        if not attribute.case_exact:
            return left.lower() == right.lower()
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    return bool(left == right)


# --- documents ----------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _put(obj: _Doc, name: str, value: Any) -> None:
    """Set ``obj[name]``, dropping other spellings of the same key (RFC 7643 §2.1)."""
    if name not in obj:
        _pop(obj, name)
    obj[name] = value


def _pop(obj: _Doc, name: str) -> None:
    lowered = name.lower()
    for key in [k for k in obj if isinstance(k, str) and k.lower() == lowered]:
        del obj[key]


def _sync_schemas(rt: ResourceType, doc: _Doc) -> None:
    """``schemas`` lists the core schema and each extension that has values (RFC 7643 §3)."""
    present = []
    for link in rt.extensions:
        urn = link.schema.id
        value = get_ci(doc, urn)
        _pop(doc, urn)
        if isinstance(value, dict) and value:
            doc[urn] = value
            present.append(urn)
        elif value is not None and not isinstance(value, dict):
            doc[urn] = value  # not an object: validate.parse_resource reports it
    _put(doc, "schemas", [rt.schema.id, *present])


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__  # pragma: no cover - not producible by a JSON decoder


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def _shown(text: str) -> str:
    return f'"{_cut(text)}"'
