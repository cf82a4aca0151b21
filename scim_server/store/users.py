"""User rows: the document, its promoted columns and its multi-valued index rows, kept in step.

``write_user`` is the only place that sets a user's ``data``; it re-derives the promoted columns
and rewrites the child rows of exactly the multi-valued attributes that changed, so the index a
filter reads can never drift from the document a GET returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from scim_server.policy import domains
from scim_server.scim.errors import InvalidValue
from scim_server.scim.schema import ACCESS_USER, Attribute, ResourceType
from scim_server.scim.validate import parse_datetime
from scim_server.store.filters import ChildStorage, ResourceStorage
from scim_server.store.models import User, UserAttributeValue
from scim_server.store.types import utcnow

USER_STORAGE = ResourceStorage(
    model=User,
    pk_column="pk",
    org_column="org_id",
    document_column="data",
    columns={
        "id": "id",
        "externalid": "external_id",
        "username": "user_name",
        "displayname": "display_name",
        "meta.created": "created_at",
        "meta.lastmodified": "last_modified",
    },
    child=ChildStorage(
        model=UserAttributeValue,
        parent_fk="user_pk",
        key_column="attribute",
        columns={"value": "value", "type": "type", "primary": "primary", "display": "display"},
    ),
    # Computed, not in the document: memberships (``groups``) and the access extension's
    # effective access (issue 4) and lifecycle (issue 5). A filter on them answers 400 rather
    # than silently matching nothing.
    unfilterable=frozenset(
        {"groups", "schemas", "role", "accessgroups", "status", "lastsigninat", "lastactivityat"}
    ),
)


def indexed_attributes(rt: ResourceType) -> Iterator[tuple[str, str | None, Attribute]]:
    """Every stored multi-valued attribute: (child key, extension URN or None, definition)."""
    for attribute in rt.schema.attributes:
        if attribute.multi_valued and attribute.mutability != "readOnly":
            yield attribute.name, None, attribute
    for extension in rt.extensions:
        for attribute in extension.schema.attributes:
            if attribute.multi_valued and attribute.mutability != "readOnly":
                yield f"{extension.schema.id}:{attribute.name}", extension.schema.id, attribute


def _elements(doc: dict[str, Any], urn: str | None, attribute: Attribute) -> list[Any]:
    holder = doc.get(urn, {}) if urn else doc
    value = holder.get(attribute.name) if isinstance(holder, dict) else None
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _child_rows(
    org_id: int, key: str, attribute: Attribute, elements: list[Any]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for element in elements:
        if attribute.is_complex and isinstance(element, dict):
            rows.append(
                {
                    "org_id": org_id,
                    "attribute": key,
                    "value": _text(element.get("value")),
                    "type": _text(element.get("type")),
                    "primary": element.get("primary") is True,
                    "display": _text(element.get("display")),
                    "data": element,
                }
            )
        else:
            rows.append(
                {
                    "org_id": org_id,
                    "attribute": key,
                    "value": _text(element),
                    "type": None,
                    "primary": False,
                    "display": None,
                    "data": {"value": element},
                }
            )
    return rows


#: Longest value kept in an indexed column. PostgreSQL refuses b-tree entries over 2704 bytes;
#: 512 characters stay under it even at 4 bytes per character (emails are at most 254).
MAX_INDEXED_LENGTH = 512
MAX_TYPE_LENGTH = 256


def _check_indexable(name: str, value: str | None, limit: int = MAX_INDEXED_LENGTH) -> None:
    if value is not None and len(value) > limit:
        raise InvalidValue(
            f'attribute "{name}" is {len(value)} characters long; this server indexes it and '
            f"accepts at most {limit}"
        )


def seat_domain(doc: dict[str, Any]) -> str | None:
    """The normalised domain deciding the user's seat exemption (DESIGN §5.4 item 5):
    ``userName``'s when it is an email, else the primary email's, else the first email's."""
    candidates: list[Any] = [doc.get("userName")]
    emails = doc.get("emails")
    if isinstance(emails, list):
        listed = [e for e in emails if isinstance(e, dict)]
        candidates += [e.get("value") for e in listed if e.get("primary") is True]
        candidates += [e.get("value") for e in listed]
    for address in candidates:
        raw = domains.email_domain(address) if isinstance(address, str) else None
        if raw is None:
            continue
        try:
            return domains.normalise_domain(raw)
        except domains.InvalidDomain:
            return None
    return None


def apply_document(user: User, doc: dict[str, Any]) -> None:
    """Set the document and the columns promoted from it."""
    _check_indexable("userName", doc["userName"])
    _check_indexable("externalId", doc.get("externalId"))
    user.data = doc
    user.user_name = doc["userName"]
    user.external_id = doc.get("externalId")
    user.display_name = doc.get("displayName")
    # Unassigned ``active`` (removed by PATCH) is not a deactivation (DESIGN §5.3).
    user.active = doc.get("active") is not False
    user.seat_domain = seat_domain(doc)
    extension = doc.get(ACCESS_USER)
    expires = extension.get("accessExpiresAt") if isinstance(extension, dict) else None
    user.access_expires_at = parse_datetime(expires) if isinstance(expires, str) else None


def write_user(
    session: Session,
    rt: ResourceType,
    user: User,
    doc: dict[str, Any],
    previous: dict[str, Any] | None,
) -> None:
    """Store ``doc`` as the user's document; ``previous`` is the stored one (None on create).

    The caller has already added a new ``user`` to the session; this flushes it so that the
    unique index on ``userName`` is checked here, inside the caller's transaction.
    """
    now = utcnow()
    if previous is None:
        user.created_at = now
    user.last_modified = now
    apply_document(user, doc)
    # Index rows of the multi-valued attributes that changed, checked before anything is sent.
    stale: list[str] = []
    fresh: list[dict[str, Any]] = []
    for key, urn, attribute in indexed_attributes(rt):
        new_elements = _elements(doc, urn, attribute)
        old_elements = _elements(previous, urn, attribute) if previous is not None else []
        if previous is not None and new_elements == old_elements:
            continue
        if old_elements:
            stale.append(key)
        for row in _child_rows(user.org_id, key, attribute, new_elements):
            _check_indexable(f"{key}.value", row["value"])
            _check_indexable(f"{key}.type", row["type"], MAX_TYPE_LENGTH)
            fresh.append(row)
    session.flush()  # assigns user.pk, and checks userName uniqueness

    for row in fresh:
        row["user_pk"] = user.pk
    if stale:
        session.execute(
            delete(UserAttributeValue).where(
                UserAttributeValue.user_pk == user.pk, UserAttributeValue.attribute.in_(stale)
            )
        )
    if fresh:
        session.execute(insert(UserAttributeValue), fresh)
