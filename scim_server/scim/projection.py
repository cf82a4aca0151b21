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


@dataclass(frozen=True)
class _Plan:
    """Every decision of one projection for one resource type, made once: the step of each
    top-level name (lower case: names are case-insensitive, RFC 7643 §2.1) and the step of any
    other key. A page renders the same keys a hundred times, and looking each one up in the
    schemas again was a third of a list page's CPU (issue #7's profile)."""

    steps: dict[str, Step]
    unknown: Step


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
    #: the plan for ``resource_type``, built at first use (a list as a holder: the dataclass
    #: is frozen; two threads building it at once build equal plans)
    _plan_holder: list[_Plan] = field(
        default_factory=list, init=False, repr=False, compare=False, hash=False
    )

    def _plan(self, rt: ResourceType) -> _Plan:
        if rt is not self.resource_type:  # never today; correct anyway, just not remembered
            return _build_plan(rt, self)
        if not self._plan_holder:
            self._plan_holder.append(_build_plan(rt, self))
        return self._plan_holder[0]

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
#: attributes (most of them), so its plan is built once per process, not per request.
_DEFAULTS: dict[int, tuple[ResourceType, Projection]] = {}
#: resource types are a registry's, one registry per app: a few per process
_MAX_DEFAULTS = 64


def _default_projection(rt: ResourceType) -> Projection:
    known = _DEFAULTS.get(id(rt))
    if known is not None and known[0] is rt:
        return known[1]
    projection = Projection(rt)
    if len(_DEFAULTS) < _MAX_DEFAULTS:
        _DEFAULTS[id(rt)] = (rt, projection)
    return projection


def apply_projection(
    rt: ResourceType, doc: dict[str, Any], projection: Projection
) -> dict[str, Any]:
    """Return a copy of the rendered resource ``doc`` holding only what ``projection`` returns.

    Key order is kept. Extension objects left empty are dropped, and ``schemas`` then lists only
    the extensions still present (RFC 7643 §3: ``schemas`` names what the resource carries).

    What to do with each key is decided once per projection (``_Plan``).
    """
    plan = projection._plan(rt)
    steps, unknown = plan.steps, plan.unknown
    out: dict[str, Any] = {}
    for key, value in doc.items():
        steps.get(key.lower(), unknown)(out, key, value)

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


def _build_plan(rt: ResourceType, projection: Projection) -> _Plan:
    """Lookups in the order the names resolve: a common attribute, then a core attribute, then
    an extension's URN; anything else (the core schema's URN included) is an unknown key."""
    unknown = _copy if projection._keeps_unknown(_COMMON_SCOPE) else _drop
    steps: dict[str, Step] = {}
    for ext in rt.extensions:
        if ext.schema is not rt.schema:
            steps[ext.schema.id.lower()] = _extension_step(ext.schema, projection, unknown)
    core_scope = rt.schema.id.lower()
    for attr in rt.schema.attributes:
        steps[attr.name.lower()] = _attribute_step(projection, core_scope, attr)
    for name, common in _COMMON.items():
        steps[name] = _attribute_step(projection, _COMMON_SCOPE, common)
    return _Plan(steps, unknown)


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
    unknown = _copy if projection._keeps_unknown(scope) else _drop
    steps = {
        attr.name.lower(): _attribute_step(projection, scope, attr) for attr in schema.attributes
    }

    def put_extension(out: dict[str, Any], key: str, value: Any) -> None:
        if not isinstance(value, dict):
            otherwise(out, key, value)
            return
        result: dict[str, Any] = {}
        for name, item in value.items():
            steps.get(name.lower(), unknown)(result, name, item)
        if result:
            out[key] = result

    return put_extension


class _SubAttributes:
    """Which keys of one complex value (one element of a multi-valued one) are kept: decided for
    every sub-attribute up front; keys the schema does not define follow one rule."""

    def __init__(self, projection: Projection, scope: str, attr: Attribute, selected: _Selected):
        self._keeps = {
            sub.name.lower(): projection._keeps_sub(scope, attr, sub, selected)
            for sub in attr.sub_attributes
        }
        self._keeps_unknown = selected.subs is None and projection._keeps_unknown(scope)
        self._keeps_all = self._keeps_unknown and all(self._keeps.values())

    def project(self, value: dict[str, Any]) -> dict[str, Any]:
        if self._keeps_all:
            return dict(value)
        keeps, unknown = self._keeps, self._keeps_unknown
        return {key: item for key, item in value.items() if keeps.get(key.lower(), unknown)}


def _is_core_or_unrelated(rt: ResourceType, urn: str) -> bool:
    """True for the core schema URN, and for URNs that are not extensions of ``rt``."""
    schema = rt.schema_for_urn(urn)
    return schema is None or schema is rt.schema
