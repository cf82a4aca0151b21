"""Schema registry: the SCIM schema and ResourceType documents in ``schemas/`` as typed objects.

RFC 7643 §7 (schema definitions) and §6 (resource types). These documents are the single source
of truth: discovery endpoints serve them, validation, projection, PATCH and filter compilation all
look attributes up here. Attribute names and schema URNs are case-insensitive (RFC 7643 §2.1), so
every lookup goes through a lower-cased index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from scim_server.project_files import schema_folder

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ACCESS_USER = "urn:ietf:params:scim:schemas:extension:access:2.0:User"

#: Attributes every resource has (RFC 7643 §3.1); they are not part of any schema document.
COMMON_ATTRIBUTES = ("id", "externalId", "meta", "schemas")


@dataclass(frozen=True)
class Attribute:
    """One attribute definition (RFC 7643 §7)."""

    name: str
    type: str
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    sub_attributes: tuple[Attribute, ...] = ()
    description: str = ""

    @cached_property
    def _sub_index(self) -> dict[str, Attribute]:
        return {a.name.lower(): a for a in self.sub_attributes}

    def sub(self, name: str) -> Attribute | None:
        """The sub-attribute called ``name`` (any case), or None."""
        return self._sub_index.get(name.lower())

    @property
    def is_complex(self) -> bool:
        return self.type == "complex"

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Attribute:
        return cls(
            name=doc["name"],
            type=doc["type"],
            multi_valued=bool(doc.get("multiValued", False)),
            required=bool(doc.get("required", False)),
            case_exact=bool(doc.get("caseExact", False)),
            mutability=doc.get("mutability", "readWrite"),
            returned=doc.get("returned", "default"),
            uniqueness=doc.get("uniqueness", "none"),
            canonical_values=tuple(doc.get("canonicalValues", ())),
            reference_types=tuple(doc.get("referenceTypes", ())),
            sub_attributes=tuple(cls.from_document(sub) for sub in doc.get("subAttributes", ())),
            description=doc.get("description", ""),
        )


@dataclass(frozen=True)
class Schema:
    """A schema document: the core schema of a resource type or one of its extensions."""

    id: str
    name: str
    attributes: tuple[Attribute, ...]
    document: dict[str, Any] = field(repr=False, compare=False)

    @cached_property
    def _index(self) -> dict[str, Attribute]:
        return {a.name.lower(): a for a in self.attributes}

    def attribute(self, name: str) -> Attribute | None:
        """The top-level attribute called ``name`` (any case), or None."""
        return self._index.get(name.lower())

    @cached_property
    def binary_attributes(self) -> tuple[Attribute, ...]:
        """The attributes that are ``binary`` or have a ``binary`` sub-attribute: the ones whose
        values validation checks for base64 (none but ``x509Certificates`` in the User schema)."""
        return tuple(
            attribute
            for attribute in self.attributes
            if attribute.type == "binary"
            or any(sub.type == "binary" for sub in attribute.sub_attributes)
        )

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Schema:
        return cls(
            id=doc["id"],
            name=doc.get("name", ""),
            attributes=tuple(Attribute.from_document(a) for a in doc.get("attributes", ())),
            document=doc,
        )


@dataclass(frozen=True)
class Extension:
    schema: Schema
    required: bool


@dataclass(frozen=True)
class ResourceType:
    """A resource type (RFC 7643 §6): its endpoint, core schema and extensions."""

    id: str
    name: str
    endpoint: str
    schema: Schema
    extensions: tuple[Extension, ...]
    document: dict[str, Any] = field(repr=False, compare=False)

    @cached_property
    def _schemas_by_urn(self) -> dict[str, Schema]:
        found = {self.schema.id.lower(): self.schema}
        for ext in self.extensions:
            found[ext.schema.id.lower()] = ext.schema
        return found

    @property
    def schema_ids(self) -> tuple[str, ...]:
        return (self.schema.id, *(ext.schema.id for ext in self.extensions))

    def schema_for_urn(self, urn: str) -> Schema | None:
        """The core or extension schema whose id is ``urn`` (any case), or None."""
        return self._schemas_by_urn.get(urn.lower())

    def split_urn_path(self, path: str) -> tuple[Schema | None, str]:
        """Split ``urn:...:User:name.givenName`` into (schema, ``name.givenName``).

        A path without a known schema URN prefix returns (None, path). RFC 7644 §3.10 writes the
        attribute after the URN with a colon; the longest matching URN wins, so the enterprise
        extension is not mistaken for the core schema.
        """
        lowered = path.lower()
        best: Schema | None = None
        for urn, schema in self._schemas_by_urn.items():
            if lowered.startswith(urn) and (best is None or len(urn) > len(best.id)):
                best = schema
        if best is None:
            return None, path
        rest = path[len(best.id) :]
        if rest.startswith(":"):
            rest = rest[1:]
        return best, rest


class Registry:
    """All schema and resource type documents, loaded once from a folder."""

    def __init__(self, schemas: list[dict[str, Any]], resource_types: list[dict[str, Any]]):
        self.schema_documents = schemas
        self.resource_type_documents = resource_types
        self._schemas = {doc["id"].lower(): Schema.from_document(doc) for doc in schemas}
        self._resource_types: dict[str, ResourceType] = {}
        for doc in resource_types:
            core = self._schemas[doc["schema"].lower()]
            extensions = tuple(
                Extension(self._schemas[ext["schema"].lower()], bool(ext.get("required", False)))
                for ext in doc.get("schemaExtensions", ())
            )
            rt = ResourceType(
                id=doc.get("id", doc["name"]),
                name=doc["name"],
                endpoint=doc["endpoint"],
                schema=core,
                extensions=extensions,
                document=doc,
            )
            self._resource_types[rt.name.lower()] = rt

    @classmethod
    def load(cls, folder: Path) -> Registry:
        """Read every ``*.json`` file in ``folder``; ResourceType documents are told by schema."""
        schemas: list[dict[str, Any]] = []
        resource_types: list[dict[str, Any]] = []
        for path in sorted(folder.glob("*.json")):
            doc = json.loads(path.read_text(encoding="utf-8"))
            if "urn:ietf:params:scim:schemas:core:2.0:ResourceType" in doc.get("schemas", ()):
                resource_types.append(doc)
            else:
                schemas.append(doc)
        return cls(schemas, resource_types)

    def schema(self, urn: str) -> Schema | None:
        return self._schemas.get(urn.lower())

    def resource_type(self, name: str) -> ResourceType:
        return self._resource_types[name.lower()]

    @property
    def resource_types(self) -> list[ResourceType]:
        return list(self._resource_types.values())


def default_schema_folder() -> Path:
    """``schemas/`` at the project root, or the copy installed inside the package."""
    return schema_folder()


_default: Registry | None = None


def default_registry() -> Registry:
    """The registry of the shipped schema documents, loaded once per process."""
    global _default
    if _default is None:
        _default = Registry.load(default_schema_folder())
    return _default
