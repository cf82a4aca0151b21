"""Attribute projection: ``attributes`` / ``excludedAttributes`` (RFC 7644 §3.4.2.5, §3.9).

Which attributes a response carries is decided by each attribute's ``returned`` characteristic
(RFC 7643 §2.4, §7) together with the two query parameters:

- ``always`` (``id``, ``schemas``) is in every response, whatever the parameters say;
- ``never`` (``password``) is in none;
- ``default`` is returned unless excluded, or unless an ``attributes`` list is given that does
  not name it (the list *replaces* the default set, RFC 7644 §3.4.2.5);
- ``request`` is returned only when named in ``attributes``.

Names are attribute paths (RFC 7644 §3.10): ``userName``, ``name.givenName``, ``emails.value``,
``meta.lastModified``, ``urn:...:enterprise:2.0:User:department``, or a bare extension URN for
the whole extension; any case (RFC 7643 §2.1). Names this resource type does not define are
ignored rather than refused, as most providers do: an IdP that asks for an attribute we lack
still gets a usable answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scim_server.scim.errors import InvalidValue
from scim_server.scim.schema import Attribute, ResourceType, Schema

#: A resolved path: (scope, attribute, sub-attribute), all lower case. ``scope`` is the schema
#: URN of a schema attribute, or ``""`` for a common attribute (RFC 7643 §3.1). ``attribute`` None
#: names every attribute of the schema (a bare schema URN).
Path = tuple[str, str | None, str | None]

_COMMON_SCOPE = ""


def _meta_sub(name: str, kind: str) -> Attribute:
    return Attribute(name=name, type=kind, case_exact=True, mutability="readOnly")


# The common attributes are in no schema document, so their ``returned`` lives here
# (RFC 7643 §3.1: ``id`` is returned always; ``meta`` and its sub-attributes by default).
_COMMON: dict[str, Attribute] = {
    a.name.lower(): a
    for a in (
        Attribute(
            name="id", type="string", case_exact=True, mutability="readOnly", returned="always"
        ),
        Attribute(name="externalId", type="string", case_exact=True),
        Attribute(
            name="meta",
            type="complex",
            mutability="readOnly",
            sub_attributes=(
                _meta_sub("resourceType", "string"),
                _meta_sub("created", "dateTime"),
                _meta_sub("lastModified", "dateTime"),
                _meta_sub("location", "reference"),
                _meta_sub("version", "string"),
            ),
        ),
        Attribute(
            name="schemas",
            type="reference",
            multi_valued=True,
            case_exact=True,
            mutability="readOnly",
            returned="always",
        ),
    )
}


@dataclass(frozen=True)
class _Selected:
    """A top-level attribute that is returned; ``subs`` set when only those were asked for."""

    subs: frozenset[str] | None = None


_WHOLE = _Selected()

#: Puts one key's value into the response being built (or leaves it out).
Step = Callable[[dict[str, Any], str, Any], None]

#: Keys remembered per projection (or per complex attribute) at most: stored documents hold the
#: schemas' attributes, but a bound keeps a document with stray keys from growing the cache.
_MAX_REMEMBERED = 256


class _Steps(dict[str, Step]):
    """The step decided for each key seen, for one projection (thread-safe enough: a step is a
    pure function of the key, so two threads deciding the same key at once store equal steps)."""

    def remember(self, key: str, step: Step) -> Step:
        if len(self) < _MAX_REMEMBERED:
            self[key] = step
        return step


@dataclass(frozen=True)
class Projection:
    """The ``attributes`` / ``excludedAttributes`` of one request, resolved for one resource type.

    ``attributes`` is None when the parameter was not given (the default set applies); an empty
    set means it was given but named nothing this resource type has, so only ``returned: always``
    attributes remain. Only one of the two parameters can be in effect.
    """

    resource_type: ResourceType = field(repr=False, compare=False)
    attributes: frozenset[Path] | None = None
    excluded: frozenset[Path] = frozenset()
    _steps: _Steps = field(
        default_factory=_Steps, init=False, repr=False, compare=False, hash=False
    )

    def includes(self, attr_name: str, urn: str | None = None) -> bool:
        """Whether the top-level attribute ``attr_name`` (of schema ``urn``) is returned at all.

        Lets the service skip work, e.g. never load a group's members for
        ``excludedAttributes=members`` (DESIGN §4). ``urn`` None means the core schema or a common
        attribute; ``attr_name`` may also be a bare extension URN, asking whether any part of that
        extension is returned.
        """
        rt = self.resource_type
        if urn is None:
            ext = rt.schema_for_urn(attr_name)
            if ext is not None and ext is not rt.schema:
                return any(self._select(ext.id.lower(), a) for a in ext.attributes)
            common = _COMMON.get(attr_name.lower())
            if common is not None:
                return self._select(_COMMON_SCOPE, common) is not None
            schema: Schema | None = rt.schema
        else:
            schema = rt.schema_for_urn(urn)
        attr = schema.attribute(attr_name) if schema is not None else None
        if schema is None or attr is None:
            return self.attributes is None
        return self._select(schema.id.lower(), attr) is not None

    def _select(self, scope: str, attr: Attribute) -> _Selected | None:
        """Whether a top-level attribute is returned, and whether only named subs of it."""
        if attr.returned == "never":
            return None
        if attr.returned == "always":
            return _WHOLE
        name = attr.name.lower()
        if self.attributes is not None:
            if (scope, name, None) in self.attributes:
                return _WHOLE
            subs = frozenset(
                sub
                for (s, a, sub) in self.attributes
                if s == scope and a == name and sub is not None
            )
            if subs:
                return _Selected(subs)
            # A bare schema URN asks for that schema's default set, not its request-only extras.
            if (scope, None, None) in self.attributes and attr.returned == "default":
                return _WHOLE
            return None
        if attr.returned == "request":
            return None
        if (scope, name, None) in self.excluded or (scope, None, None) in self.excluded:
            return None
        return _WHOLE

    def _keeps_sub(self, scope: str, attr: Attribute, sub: Attribute, selected: _Selected) -> bool:
        """Whether sub-attribute ``sub`` of a returned ``attr`` is in the response."""
        if sub.returned == "never":
            return False
        if sub.returned == "always":
            return True
        path = (scope, attr.name.lower(), sub.name.lower())
        if self.attributes is not None:
            if path in self.attributes:
                return True
            return selected.subs is None and sub.returned == "default"
        return sub.returned == "default" and path not in self.excluded

    def _keeps_unknown(self, scope: str) -> bool:
        # A key no schema defines cannot be asked for by name; it follows the default set.
        return self.attributes is None and (scope, None, None) not in self.excluded


def parse_projection(rt: ResourceType, attributes: str | None, excluded: str | None) -> Projection:
    """Parse the two comma-separated query parameters (RFC 7644 §3.4.2.5) for ``rt``.

    An empty parameter counts as absent. Giving both is refused: the RFC defines each as
    overriding the default set in a different direction, and no combination has a meaning
    clients agree on.
    """
    wanted = _names(attributes)
    unwanted = _names(excluded)
    if wanted is not None and unwanted is not None:
        raise InvalidValue(
            "use either the attributes or the excludedAttributes parameter, not both "
            "(RFC 7644 §3.4.2.5)"
        )
    if wanted is not None:
        return Projection(rt, attributes=_resolve_all(rt, wanted))
    if unwanted is not None:
        return Projection(rt, excluded=_resolve_all(rt, unwanted))
    return _default_projection(rt)


#: The default projection of each resource type, shared by every request that names no
#: attributes (most of them), so its remembered steps outlive the request.
_DEFAULTS: dict[int, tuple[ResourceType, Projection]] = {}


def _default_projection(rt: ResourceType) -> Projection:
    known = _DEFAULTS.get(id(rt))
    if known is not None and known[0] is rt:
        return known[1]
    projection = Projection(rt)
    if len(_DEFAULTS) < _MAX_REMEMBERED:
        _DEFAULTS[id(rt)] = (rt, projection)
    return projection


def apply_projection(
    rt: ResourceType, doc: dict[str, Any], projection: Projection
) -> dict[str, Any]:
    """Return a copy of the rendered resource ``doc`` holding only what ``projection`` returns.

    Key order is kept. Extension objects left empty are dropped, and ``schemas`` then lists only
    the extensions still present (RFC 7643 §3: ``schemas`` names what the resource carries).

    What to do with each key is decided once per projection and key and remembered on the
    projection (``_Steps``): a page renders the same keys a hundred times, and looking each up in
    the schemas again was a third of a list page's CPU (issue #7's profile).
    """
    steps = projection._steps
    out: dict[str, Any] = {}
    for key, value in doc.items():
        step = steps.get(key)
        if step is None:
            step = steps.remember(key, _top_level_step(rt, key, projection))
        step(out, key, value)

    schemas = out.get("schemas")
    if isinstance(schemas, list):
        present = {k.lower() for k in out}
        out["schemas"] = [
            urn
            for urn in schemas
            if not isinstance(urn, str) or _is_core_or_unrelated(rt, urn) or urn.lower() in present
        ]
    return out


# --- internals ----------------------------------------------------------------------------------


def _names(parameter: str | None) -> list[str] | None:
    if parameter is None:
        return None
    names = [part.strip() for part in parameter.split(",") if part.strip()]
    return names or None


def _resolve_all(rt: ResourceType, names: list[str]) -> frozenset[Path]:
    return frozenset(path for path in (_resolve(rt, name) for name in names) if path is not None)


def _resolve(rt: ResourceType, text: str) -> Path | None:
    """Resolve one attribute path against ``rt``, or None when it names nothing there."""
    schema, rest = rt.split_urn_path(text)
    if schema is not None:
        tail = text[len(schema.id) :]
        if not tail:
            return (schema.id.lower(), None, None)
        if not tail.startswith(":"):
            return None  # "urn:...:Users" is not the User schema
    parts = rest.split(".")
    if len(parts) > 2 or not all(parts):
        return None
    name, sub_name = parts[0], (parts[1] if len(parts) == 2 else None)

    attr: Attribute | None = None
    scope = _COMMON_SCOPE
    if schema is None or schema is rt.schema:
        attr = rt.schema.attribute(name)
        scope = rt.schema.id.lower()
        if attr is None:
            attr = _COMMON.get(name.lower())
            scope = _COMMON_SCOPE
    else:
        attr = schema.attribute(name)
        scope = schema.id.lower()
    if attr is None:
        return None
    if sub_name is None:
        return (scope, attr.name.lower(), None)
    sub = attr.sub(sub_name)
    if sub is None:
        return None
    return (scope, attr.name.lower(), sub.name.lower())


def _drop(out: dict[str, Any], key: str, value: Any) -> None:
    pass


def _copy(out: dict[str, Any], key: str, value: Any) -> None:
    out[key] = value


def _top_level_step(rt: ResourceType, key: str, projection: Projection) -> Step:
    common = _COMMON.get(key.lower())
    if common is not None:
        return _attribute_step(projection, _COMMON_SCOPE, common)
    core = rt.schema.attribute(key)
    if core is not None:
        return _attribute_step(projection, rt.schema.id.lower(), core)
    unknown = _copy if projection._keeps_unknown(_COMMON_SCOPE) else _drop
    ext = rt.schema_for_urn(key)
    if ext is not None and ext is not rt.schema:
        return _extension_step(ext, projection, unknown)
    return unknown


def _attribute_step(projection: Projection, scope: str, attr: Attribute) -> Step:
    """How one attribute's value is put into the response."""
    selected = projection._select(scope, attr)
    if selected is None:
        return _drop
    if not attr.is_complex:
        return _copy
    project = _SubAttributes(projection, scope, attr, selected).project

    def put_complex(out: dict[str, Any], key: str, value: Any) -> None:
        if isinstance(value, list):
            items = [project(item) if isinstance(item, dict) else item for item in value]
            kept = [item for item in items if item not in ({}, None)]
            if kept or not value:
                out[key] = kept
        elif isinstance(value, dict):
            projected = project(value)
            if projected:
                out[key] = projected
        else:
            out[key] = value

    return put_complex


def _extension_step(schema: Schema, projection: Projection, otherwise: Step) -> Step:
    """Project an extension's attribute object (RFC 7643 §3.3); ``otherwise`` for a non-object."""
    scope = schema.id.lower()
    steps = _Steps()

    def put_extension(out: dict[str, Any], key: str, value: Any) -> None:
        if not isinstance(value, dict):
            otherwise(out, key, value)
            return
        result: dict[str, Any] = {}
        for name, item in value.items():
            step = steps.get(name)
            if step is None:
                attr = schema.attribute(name)
                if attr is not None:
                    step = _attribute_step(projection, scope, attr)
                else:
                    step = _copy if projection._keeps_unknown(scope) else _drop
                steps.remember(name, step)
            step(result, name, item)
        if result:
            out[key] = result

    return put_extension


class _SubAttributes:
    """Which keys of one complex value (one element of a multi-valued one) are kept."""

    def __init__(self, projection: Projection, scope: str, attr: Attribute, selected: _Selected):
        self._projection = projection
        self._scope = scope
        self._attr = attr
        self._selected = selected
        self._keeps: dict[str, bool] = {}
        self._keeps_all = (
            selected.subs is None
            and projection._keeps_unknown(scope)
            and all(
                projection._keeps_sub(scope, attr, sub, selected) for sub in attr.sub_attributes
            )
        )

    def project(self, value: dict[str, Any]) -> dict[str, Any]:
        if self._keeps_all:
            return dict(value)
        result: dict[str, Any] = {}
        keeps = self._keeps
        for key, item in value.items():
            keep = keeps.get(key)
            if keep is None:
                keep = self._keeps_key(key)
                if len(keeps) < _MAX_REMEMBERED:
                    keeps[key] = keep
            if keep:
                result[key] = item
        return result

    def _keeps_key(self, key: str) -> bool:
        sub = self._attr.sub(key)
        if sub is None:
            return self._selected.subs is None and self._projection._keeps_unknown(self._scope)
        return self._projection._keeps_sub(self._scope, self._attr, sub, self._selected)


def _is_core_or_unrelated(rt: ResourceType, urn: str) -> bool:
    """True for the core schema URN, and for URNs that are not extensions of ``rt``."""
    schema = rt.schema_for_urn(urn)
    return schema is None or schema is rt.schema
