"""A User as one row of a table (``users export``/``users import``), columns from the schemas.

The columns come from the User resource type's schema documents, not from a list kept here:

- a single-valued simple attribute is a column named after it (``userName``, ``active``,
  ``department``, ``status``); a single-valued complex one gives a column per simple
  sub-attribute (``name.givenName``, ``manager.value``);
- a multi-valued attribute with a ``value`` is one column of values separated by ``;``, the first
  being the primary (``emails``, ``roles``); a read-only one shows the values' ``display`` where
  they have one (``groups``: group names, not ids);
- attributes never returned (``password``) and multi-valued ones without a ``value``
  (``addresses``) are not in the table; an import leaves them as they are;
- an extension attribute is named without its schema URN, unless a core attribute has the same
  name; ``id`` and ``externalId`` come first.

Cells are text: booleans ``true``/``false``, numbers as written, an absent attribute empty. In a
list, a ``;`` or ``\\`` inside a value is written ``\\;`` or ``\\\\``, and each value is trimmed.
A cell that a spreadsheet would run as a formula (its first character ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return; a phone number's ``+``) is written after a ``'``, which reading
removes (OWASP's advice against CSV injection: the values come from an identity provider).
Reading a row back (:func:`apply_row`) changes only writable columns the file has: an empty cell
removes the attribute (``active`` stays as it is), a list of values equal to the stored one keeps
the stored entries (their ``type`` and ``primary``), and otherwise keeps the entries whose value
is still listed and adds the others, the first value becoming the primary.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from scim_server.scim.schema import Attribute, ResourceType

SEPARATOR = ";"
ESCAPE = "\\"
#: First characters a spreadsheet reads as the start of a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
#: Columns whose empty cell means "leave it": removing them is not a change an admin means.
KEEP_WHEN_EMPTY = frozenset({"active"})


@dataclass(frozen=True)
class Column:
    header: str
    #: The schema URN the attribute belongs to; None for ``id`` and ``externalId``.
    schema: str | None
    attribute: str
    sub: str | None = None
    multi_valued: bool = False
    writable: bool = True
    type: str = "string"

    def read(self, doc: dict[str, Any], core: str) -> str:
        holder = doc if self.schema in (None, core) else doc.get(self.schema or "", {})
        value = holder.get(self.attribute) if isinstance(holder, dict) else None
        if self.sub is not None:
            value = value.get(self.sub) if isinstance(value, dict) else None
        if self.multi_valued:
            if not isinstance(value, list):
                return ""
            key = "value" if self.writable else "display"
            items = sorted(
                (item for item in value if isinstance(item, dict)),
                key=lambda item: not item.get("primary", False),
            )
            return SEPARATOR.join(
                _escaped(str(item.get(key, item.get("value", "")))) for item in items
            )
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


def _escaped(value: str) -> str:
    return value.replace(ESCAPE, ESCAPE * 2).replace(SEPARATOR, ESCAPE + SEPARATOR)


def split_values(text: str) -> list[str]:
    """A list cell's values: split at unescaped ``;``, unescaped, trimmed, empty ones dropped."""
    values: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == ESCAPE:
            current.append(next(chars, ""))
        elif char == SEPARATOR:
            values.append("".join(current))
            current = []
        else:
            current.append(char)
    values.append("".join(current))
    return [value.strip() for value in values if value.strip()]


def safe_cell(text: str) -> str:
    """The cell as written to a file: a ``'`` before what a spreadsheet would run."""
    return QUOTE + text if text.startswith(FORMULA_STARTS) else text


def unsafe_cell(text: str) -> str:
    """The cell as read from a file: the ``'`` of :func:`safe_cell` removed."""
    return text[1:] if text.startswith(QUOTE) and text[1:].startswith(FORMULA_STARTS) else text


def _readable(attribute: Attribute) -> bool:
    return attribute.returned != "never"


def _writable(attribute: Attribute, parent: Attribute | None = None) -> bool:
    modes = {attribute.mutability, parent.mutability if parent else "readWrite"}
    return not modes & {"readOnly"}


def user_columns(rt: ResourceType) -> list[Column]:
    core = rt.schema
    columns = [
        Column("id", None, "id", writable=False),
        Column("externalId", None, "externalId"),
    ]
    core_names = {attribute.name.lower() for attribute in core.attributes}
    for schema in (core, *(extension.schema for extension in rt.extensions)):
        for attribute in schema.attributes:
            if not _readable(attribute):
                continue
            name = attribute.name
            if schema is not core and name.lower() in core_names:
                name = f"{schema.id}:{name}"
            if attribute.multi_valued:
                if attribute.is_complex and attribute.sub("value") is None:
                    continue
                columns.append(
                    Column(
                        name,
                        schema.id,
                        attribute.name,
                        multi_valued=True,
                        writable=_writable(attribute),
                    )
                )
            elif attribute.is_complex:
                for sub in attribute.sub_attributes:
                    if sub.is_complex or not _readable(sub) or sub.name.startswith("$"):
                        continue
                    columns.append(
                        Column(
                            f"{name}.{sub.name}",
                            schema.id,
                            attribute.name,
                            sub=sub.name,
                            writable=_writable(sub, attribute),
                            type=sub.type,
                        )
                    )
            else:
                columns.append(
                    Column(
                        name,
                        schema.id,
                        attribute.name,
                        writable=_writable(attribute),
                        type=attribute.type,
                    )
                )
    return columns


def to_row(doc: dict[str, Any], columns: list[Column], core: str) -> list[str]:
    return [safe_cell(column.read(doc, core)) for column in columns]


class CellError(ValueError):
    """A cell that cannot be an attribute's value; the message names the column and the rule."""


def _typed(column: Column, text: str) -> Any:
    if column.type == "boolean":
        lowered = text.strip().lower()
        if lowered not in {"true", "false"}:
            raise CellError(f'column "{column.header}": {text!r} is not true or false')
        return lowered == "true"
    if column.type == "integer":
        try:
            return int(text)
        except ValueError:
            raise CellError(f'column "{column.header}": {text!r} is not an integer') from None
    if column.type == "decimal":
        try:
            return float(text)
        except ValueError:
            raise CellError(f'column "{column.header}": {text!r} is not a number') from None
    return text


def _merged_values(existing: Any, values: list[str]) -> list[dict[str, Any]] | None:
    """The new list for ``values``: stored entries kept where their value is still listed."""
    listed = existing if isinstance(existing, list) else []
    stored = [item for item in listed if isinstance(item, dict)]
    ordered = sorted(stored, key=lambda item: not item.get("primary", False))
    if [str(item.get("value", "")) for item in ordered] == values:
        return None  # unchanged
    by_value = {str(item.get("value", "")): item for item in stored}
    merged = []
    for position, value in enumerate(values):
        entry = copy.deepcopy(by_value.get(value, {"value": value}))
        entry.pop("primary", None)
        if position == 0:
            entry["primary"] = True
        merged.append(entry)
    return merged


def apply_row(
    doc: dict[str, Any], columns: list[Column], cells: dict[str, str], core: str
) -> dict[str, Any]:
    """``doc`` with the writable columns of ``cells`` (header -> cell) applied; a new dict."""
    result = copy.deepcopy(doc)
    for column in columns:
        if not column.writable or column.header not in cells or column.header == "id":
            continue
        text = unsafe_cell(cells[column.header])
        if not text.strip():
            text = ""  # only emptiness is judged after trimming: a value keeps its spaces
        if not text and column.header in KEEP_WHEN_EMPTY:
            continue
        if column.schema in (None, core):
            holder = result
        else:
            holder = result.setdefault(column.schema or "", {})
        if column.multi_valued:
            values = split_values(text)
            if not values:
                holder.pop(column.attribute, None)
                continue
            merged = _merged_values(holder.get(column.attribute), values)
            if merged is not None:
                holder[column.attribute] = merged
            continue
        if column.sub is not None:
            parent = holder.get(column.attribute)
            parent = dict(parent) if isinstance(parent, dict) else {}
            if text:
                parent[column.sub] = _typed(column, text)
            else:
                parent.pop(column.sub, None)
            if parent:
                holder[column.attribute] = parent
            else:
                holder.pop(column.attribute, None)
            continue
        if text:
            holder[column.attribute] = _typed(column, text)
        else:
            holder.pop(column.attribute, None)
    for column in columns:  # an extension left empty is no extension
        if column.schema not in (None, core) and result.get(column.schema or "") == {}:
            result.pop(column.schema or "")
    return result
