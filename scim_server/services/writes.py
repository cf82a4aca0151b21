"""The write use cases of the resource endpoints, in one table that ``http/scim.py`` (single
requests) and ``services/bulk.py`` (/Bulk operations) both dispatch through.

Each (resource type, method) names its audit operation, its success status, its use case and
how its body is normalised for the IdP dialects. With one table, a change to what a write does
(another use case, a new normalisation) reaches /Bulk too instead of silently skipping it.
The use cases' arguments follow one shape per method: POST ``(body)``, PUT and PATCH
``(id, body, if_match)``, DELETE ``(id, if_match)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scim_server.scim import dialects
from scim_server.scim.schema import ResourceType
from scim_server.services import groups, users


@dataclass(frozen=True)
class Write:
    #: The provisioning-log operation (DESIGN §6), the same for a single request and in /Bulk.
    operation: str
    #: The success status. A group PATCH answers 204 (its single form answers 200 only when
    #: ``attributes``/``excludedAttributes`` ask for the group, which /Bulk cannot).
    status: int
    action: Callable[..., Any]
    #: Applied to the body before the use case sees it; None for a DELETE, which has none.
    normalise: Callable[[ResourceType, Any], Any] | None


WRITES: dict[tuple[str, str], Write] = {
    ("User", "POST"): Write("user.create", 201, users.create_user, dialects.normalise_resource),
    ("User", "PUT"): Write("user.replace", 200, users.replace_user, dialects.normalise_resource),
    ("User", "PATCH"): Write("user.patch", 200, users.patch_user, dialects.normalise_patch),
    ("User", "DELETE"): Write("user.delete", 204, users.delete_user, None),
    ("Group", "POST"): Write("group.create", 201, groups.create_group, dialects.normalise_resource),
    ("Group", "PUT"): Write(
        "group.replace", 200, groups.replace_group, dialects.normalise_resource
    ),
    ("Group", "PATCH"): Write("group.patch", 204, groups.patch_group, dialects.normalise_patch),
    ("Group", "DELETE"): Write("group.delete", 204, groups.delete_group, None),
}
