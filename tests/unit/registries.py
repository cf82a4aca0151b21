"""Registries for unit tests, built from the shipped ``schemas/`` documents.

``product_registry`` attaches the access extension to User, as the server will once the access
attributes are computed (issues 4 and 5); the pure modules must handle it already.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

from scim_server.scim.schema import ACCESS_USER, Registry

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


@cache
def product_registry() -> Registry:
    schemas, resource_types = [], []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if "urn:ietf:params:scim:schemas:core:2.0:ResourceType" in doc["schemas"]:
            resource_types.append(copy.deepcopy(doc))
        else:
            schemas.append(doc)
    for doc in resource_types:
        extensions = doc.setdefault("schemaExtensions", [])
        if doc["name"] == "User" and ACCESS_USER not in [e["schema"] for e in extensions]:
            extensions.append({"schema": ACCESS_USER, "required": False})
    return Registry(schemas, resource_types)
