"""Registries for unit tests, built from the shipped ``schemas/`` documents.

``product_registry`` is the shipped registry, with the access extension's ``accessExpiresAt``
(a writable ``dateTime``) added if the shipped schema lacks it: temporary access (issue 5)
shipped it, and the pure modules' dateTime handling is tested on it either way.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

from scim_server.scim.schema import ACCESS_USER, Registry

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"

ACCESS_EXPIRES_AT = {
    "name": "accessExpiresAt",
    "type": "dateTime",
    "multiValued": False,
    "description": "End of temporary access (issue 5).",
    "required": False,
    "caseExact": False,
    "mutability": "readWrite",
    "returned": "default",
    "uniqueness": "none",
}


@cache
def product_registry() -> Registry:
    schemas, resource_types = [], []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if "urn:ietf:params:scim:schemas:core:2.0:ResourceType" in doc["schemas"]:
            resource_types.append(copy.deepcopy(doc))
        else:
            if doc["id"] == ACCESS_USER:
                doc = copy.deepcopy(doc)
                names = [attribute["name"] for attribute in doc["attributes"]]
                if ACCESS_EXPIRES_AT["name"] not in names:
                    doc["attributes"].insert(names.index("status") + 1, ACCESS_EXPIRES_AT)
            schemas.append(doc)
    for doc in resource_types:
        extensions = doc.setdefault("schemaExtensions", [])
        if doc["name"] == "User" and ACCESS_USER not in [e["schema"] for e in extensions]:
            extensions.append({"schema": ACCESS_USER, "required": False})
    return Registry(schemas, resource_types)
