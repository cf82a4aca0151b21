"""User rows: the document, its promoted columns and its multi-valued index rows, kept in step.

``write_user`` is the only place that sets a user's ``data``; it re-derives the promoted columns
and rewrites the child rows of exactly the multi-valued attributes that changed, so the index a
filter reads can never drift from the document a GET returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    bindparam,
    delete,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from scim_server.scim.errors import InvalidValue
from scim_server.scim.schema import ACCESS_USER, Attribute, ResourceType
from scim_server.scim.validate import parse_datetime
from scim_server.store.filters import ChildStorage, ResourceStorage
from scim_server.store.models import User, UserAttributeValue
from scim_server.store.text import same_text
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
        order_column="pk",
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


def _indexes_value(attribute: Attribute) -> bool:
    """Whether the elements' ``value`` is kept in the indexed column. Not for ``binary`` ones:
    a base64 certificate (``x509Certificates``) outgrows an index entry; filters read it from
    the element's JSON (``store.filters``)."""
    value = attribute.sub("value") if attribute.is_complex else attribute
    return value is None or value.type != "binary"


def _child_rows(
    org_id: int, key: str, attribute: Attribute, elements: list[Any]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    indexed = _indexes_value(attribute)
    for element in elements:
        if attribute.is_complex and isinstance(element, dict):
            rows.append(
                {
                    "org_id": org_id,
                    "attribute": key,
                    "value": _text(element.get("value")) if indexed else None,
                    "type": _text(element.get("type")),
                    # absent is false (RFC 7643 §2.4), as ``filter_eval.absent_as`` reads it
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
                    "value": _text(element) if indexed else None,
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


def document_columns(doc: dict[str, Any], seat_domain: str | None) -> dict[str, Any]:
    """The document and the columns promoted from it, by attribute name; ``seat_domain`` is
    the policy's reading of it (``policy.domains.seat_domain``), computed by the caller."""
    _check_indexable("userName", doc["userName"])
    _check_indexable("externalId", doc.get("externalId"))
    extension = doc.get(ACCESS_USER)
    expires = extension.get("accessExpiresAt") if isinstance(extension, dict) else None
    return {
        "data": doc,
        "user_name": doc["userName"],
        "external_id": doc.get("externalId"),
        "display_name": doc.get("displayName"),
        # Unassigned ``active`` (removed by PATCH) is not a deactivation (DESIGN §5.3).
        "active": doc.get("active") is not False,
        "seat_domain": seat_domain,
        "access_expires_at": parse_datetime(expires) if isinstance(expires, str) else None,
    }


def apply_document(user: User, doc: dict[str, Any], seat_domain: str | None) -> None:
    """Set the document and the columns promoted from it."""
    for key, value in document_columns(doc, seat_domain).items():
        setattr(user, key, value)


# Prebuilt Core INSERTs (issue #7): a unit-of-work flush of the new user and the ORM bulk path
# for its index rows cost more Python than the statements themselves.
_USERS = User.metadata.tables[User.__tablename__]
_INSERT_USER = insert(_USERS)
_INSERT_VALUES = insert(UserAttributeValue.metadata.tables[UserAttributeValue.__tablename__])
#: Every column of ``users`` but the generated primary key, by attribute name.
_USER_COLUMNS = tuple(
    attribute.key for attribute in inspect(User).column_attrs if attribute.key != "pk"
)
#: The lifecycle columns a write of an existing user sends with its document (DESIGN §5.3).
LIFECYCLE_COLUMNS = ("status", "activated_at")
#: The ORM's versioned UPDATE (``version_id_col``): the row as read, then the next version.
_UPDATE_USER = update(_USERS).where(
    _USERS.c.pk == bindparam("read_pk"), _USERS.c.version == bindparam("read_version")
)


def _insert_new(session: Session, user: User) -> None:
    """INSERT a new (transient) ``user`` and attach it to the session as persistent.

    What a flush of an added object does (the row, version 1, the pk), without the unit of
    work: every column is sent explicitly, so the object is fully loaded and later changes to
    it in the transaction flush as a versioned UPDATE, as before.
    """
    user.version = 1
    user.deleted_at = None
    values = {key: getattr(user, key) for key in _USER_COLUMNS}
    result = cast(CursorResult[Any], session.execute(_INSERT_USER, values))
    inserted = result.inserted_primary_key
    assert inserted is not None
    user.pk = inserted[0]
    make_transient_to_detached(user)
    session.add(user)


def _update_existing(session: Session, user: User, values: dict[str, Any]) -> None:
    """UPDATE a persistent ``user`` with ``values`` as a flush would, without the unit of work.

    The ORM's versioned statement (``WHERE pk AND version``, the next version, StaleDataError
    when no row matches), then the values become the object's committed state: set that way
    rather than as changes, they leave the unit of work nothing to do (a flush of one changed
    user was a tenth of a PUT's CPU, issue #7).
    """
    read_version = user.version
    values = {**values, "version": read_version + 1}
    params = {**values, "read_pk": user.pk, "read_version": read_version}
    with session.no_autoflush:  # the changes go in this statement, not in a flush before it
        result = cast(CursorResult[Any], session.execute(_UPDATE_USER, params))
    if result.rowcount != 1:
        raise StaleDataError(
            f"UPDATE of user {user.pk} at version {read_version} matched {result.rowcount} rows"
        )
    for key, value in values.items():
        set_committed_value(user, key, value)


def user_name_taken(
    session: Session, org_id: int, user_name: str, except_pk: int | None = None
) -> bool:
    """Whether another user of the organisation holds ``user_name``, compared as the unique
    index compares (the database's ``lower``; soft-deleted users hold no name)."""
    query = select(User.pk).where(
        User.org_id == org_id,
        same_text(User.user_name, user_name),
        User.deleted_at.is_(None),
    )
    if except_pk is not None:
        query = query.where(User.pk != except_pk)
    return session.scalar(query.limit(1)) is not None


def write_user(
    session: Session,
    rt: ResourceType,
    user: User,
    doc: dict[str, Any],
    previous: dict[str, Any] | None,
    lifecycle: dict[str, Any] | None = None,
    *,
    seat_domain: str | None,
) -> None:
    """Store ``doc`` as the user's document; ``previous`` is the stored one (None on create).

    A new ``user`` (transient, not added to the session) is inserted here, and an existing one
    updated, so that the unique index on ``userName`` is checked here, inside the caller's
    transaction (IntegrityError). ``lifecycle``: new values of :data:`LIFECYCLE_COLUMNS` for an
    existing user, sent in the same UPDATE (a new user carries its own).
    """
    now = utcnow()
    if previous is None:
        user.created_at = now
        user.last_modified = now
        apply_document(user, doc, seat_domain)
    else:
        values = document_columns(doc, seat_domain)
        values["last_modified"] = now
        for key in LIFECYCLE_COLUMNS:
            values[key] = getattr(user, key)
        values.update(lifecycle or {})
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
    if previous is None:
        _insert_new(session, user)  # assigns user.pk, and checks userName uniqueness
    else:
        _update_existing(session, user, values)  # checks userName uniqueness

    for row in fresh:
        row["user_pk"] = user.pk
    if stale:
        session.execute(
            delete(UserAttributeValue).where(
                UserAttributeValue.user_pk == user.pk, UserAttributeValue.attribute.in_(stale)
            )
        )
    if fresh:
        session.execute(_INSERT_VALUES, fresh)
