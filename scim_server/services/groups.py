"""Group provisioning use cases (DESIGN §5.2): create, read, replace, patch, delete, list.

The group's own attributes go through the same schema-driven validation and PATCH engine as a
user's; its members do not, because a 10,000-member group must not be loaded to add one member.
PATCH operations on ``members`` are routed to set operations on the membership table (add,
remove, replace: each costs in proportion to the members named), and every membership or name
change recomputes the effective access of exactly the users it can affect, in the same
transaction.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scim_server.audit.events import document_changes
from scim_server.policy import access as policy
from scim_server.scim.errors import (
    InvalidValue,
    Mutability,
    NotFound,
    ScimError,
    Uniqueness,
)
from scim_server.scim.filter import parse_patch_path
from scim_server.scim.filter_ast import Compare, Expr, Or
from scim_server.scim.filter_eval import compile_element_filter
from scim_server.scim.listing import ListQuery
from scim_server.scim.patch import Operation, apply_operations, parse_operations
from scim_server.scim.projection import Projection, apply_projection, parse_projection
from scim_server.scim.schema import ResourceType
from scim_server.scim.validate import parse_resource
from scim_server.scim.wire import compact_json
from scim_server.services import access, guards, paging
from scim_server.services.context import RequestContext
from scim_server.services.resources import Page, check_if_match, etag_of, is_resource_id, iso
from scim_server.store import groups as store
from scim_server.store.db import Database
from scim_server.store.errors import unique_violation
from scim_server.store.models import Group
from scim_server.store.types import utcnow

#: Users listed by id in an event's access changes; the rest are counted.
MAX_ACCESS_CHANGES_LISTED = 100


def group_type(ctx: RequestContext) -> ResourceType:
    return ctx.registry.resource_type("Group")


@dataclass(frozen=True)
class RenderedGroup:
    """A group without its members, and what is needed to stream them."""

    document: dict[str, Any]
    etag: str
    pk: int


def render_head(ctx: RequestContext, group: Group) -> dict[str, Any]:
    stored = group.data
    doc: dict[str, Any] = {"schemas": list(stored.get("schemas") or [group_type(ctx).schema.id])}
    doc["id"] = group.id
    for key, value in stored.items():
        if key != "schemas":
            doc[key] = value
    doc["meta"] = {
        "resourceType": "Group",
        "created": iso(group.created_at),
        "lastModified": iso(group.last_modified),
        "location": f"{ctx.base_url}/Groups/{group.id}",
        "version": etag_of(group.version),
    }
    return doc


def member_element(ctx: RequestContext, user_id: str, display: str) -> dict[str, Any]:
    return {
        "value": user_id,
        "$ref": f"{ctx.base_url}/Users/{user_id}",
        "type": "User",
        "display": display,
    }


def member_projector(ctx: RequestContext, projection: Projection) -> Any:
    """What projection leaves of each member element: None when members are not returned."""
    rt = group_type(ctx)
    if not projection.includes("members"):
        return None
    sample = {"schemas": [rt.schema.id], "id": "-", "members": [member_element(ctx, "-", "-")]}
    kept = apply_projection(rt, sample, projection).get("members")
    keys = tuple(kept[0]) if kept else ()
    return keys


#: Member elements per piece of a streamed group (about 100 KiB of JSON).
MEMBERS_PER_PIECE = 500


def member_json_chunks(
    database: Database, ctx: RequestContext, group_pk: int, keys: tuple[str, ...]
) -> Generator[str, None, None]:
    """A group's member elements as comma-separated JSON texts of up to
    :data:`MEMBERS_PER_PIECE` elements, read in batches in a transaction of their own.

    One piece per element meant one HTTP chunk and one ``send()`` per member, and one
    ``json.dumps`` call each: 10,000 of each for a department (issue #7's profile).
    """
    with database.transaction(write=False) as session:
        batch: list[dict[str, Any]] = []
        for _, element in stream_members(session, ctx, [group_pk], keys):
            batch.append(element)
            if len(batch) == MEMBERS_PER_PIECE:
                yield compact_json(batch)[1:-1]
                batch = []
        if batch:
            yield compact_json(batch)[1:-1]


def stream_members(
    session: Session, ctx: RequestContext, group_pks: list[int], keys: tuple[str, ...]
) -> Iterator[tuple[int, dict[str, Any]]]:
    for group_pk, user_id, display in store.iter_members(session, ctx.principal.org_id, group_pks):
        element = member_element(ctx, user_id, display)
        yield group_pk, {key: element[key] for key in keys}


# -- loading and storing ---------------------------------------------------------------------


@functools.cache
def _group_by_id(*, for_update: bool) -> Select[Group]:
    """The one-group read of every GET, PUT, PATCH and DELETE, built once with parameters (as
    ``users._user_by_id``): building it per request was a tenth of a group GET's CPU."""
    query = select(Group).where(
        Group.org_id == bindparam("org_id"), Group.id == bindparam("group_id")
    )
    return query.with_for_update() if for_update else query


def _load(session: Session, ctx: RequestContext, group_id: str, *, for_update: bool) -> Group:
    ctx.audit.resource_type = "Group"
    ctx.audit.resource_id = group_id[:64]
    if not is_resource_id(group_id):
        raise NotFound(f'Group "{group_id[:64]}" not found')
    group = session.scalar(
        _group_by_id(for_update=for_update),
        {"org_id": ctx.principal.org_id, "group_id": group_id},
    )
    if group is None:
        raise NotFound(f'Group "{group_id}" not found')
    return group


def _split_members(doc: dict[str, Any]) -> tuple[dict[str, Any], list[str] | None]:
    """The group document without ``members``, and the member ids it named (None: absent)."""
    body = dict(doc)
    members = body.pop("members", None)
    if members is None:
        return body, None
    return body, [member["value"] for member in members]


def _write(session: Session, ctx: RequestContext, group: Group, doc: dict[str, Any]) -> None:
    store.check_indexable("displayName", doc.get("displayName"))
    store.check_indexable("externalId", doc.get("externalId"))
    group.data = doc
    group.display_name = doc["displayName"]
    group.external_id = doc.get("externalId")
    group.last_modified = utcnow()
    try:
        session.flush()
    except IntegrityError as error:
        if unique_violation(error) in ("ux_groups_org_display_name", ""):
            raise Uniqueness(
                f'a group named "{doc["displayName"]}" already exists in this organisation '
                "(displayName is unique, case-insensitively)"
            ) from None
        raise


def _touch(session: Session, group: Group) -> None:
    """A membership change is a change of the group: new lastModified and version."""
    group.last_modified = utcnow()
    session.flush()


def _record(
    ctx: RequestContext,
    group: Group,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    added: Sequence[tuple[int, str]] = (),
    removed: Sequence[tuple[int, str]] = (),
    access_changes: dict[int, tuple[Any, Any]] | None = None,
    ids_by_pk: dict[int, str] | None = None,
) -> None:
    """The request's audit event: attribute changes, member ids added/removed, access changes."""
    ctx.audit.resource_type = "Group"
    ctx.audit.resource_id = group.id
    changes: dict[str, Any] = document_changes(before, after)
    if added or removed:
        changes["members"] = {
            "added": [user_id for _, user_id in added],
            "removed": [user_id for _, user_id in removed],
        }
    if access_changes:
        names = ids_by_pk or {}
        listed = list(access_changes.items())[:MAX_ACCESS_CHANGES_LISTED]
        changes["access"] = {
            names.get(pk, str(pk)): {"before": list(old), "after": list(new)}
            for pk, (old, new) in listed
        }
        if len(access_changes) > MAX_ACCESS_CHANGES_LISTED:
            changes["accessChangedCount"] = len(access_changes)
    ctx.audit.changes = changes


def _recompute(
    session: Session, ctx: RequestContext, user_pks: list[int], *documents: dict[str, Any]
) -> dict[int, tuple[Any, Any]]:
    """The access of ``user_pks``, whose membership of the group changed, recomputed unless no
    mapping names the group as any of ``documents`` (before and after) describes it."""
    if not user_pks:
        return {}
    identities = [
        policy.GroupRef(str(doc.get("displayName") or ""), doc.get("externalId"))
        for doc in documents
    ]
    return access.recompute_access(
        session, ctx.principal.org_id, sorted(set(user_pks)), unless_unmapped=identities
    )


# -- use cases ---------------------------------------------------------------------------------


def _require_member_values(body: Any) -> None:
    """Every member element must name its user: ``{"display": "x"}`` alone would otherwise be
    dropped by validation (display is read-only) and a PUT would silently empty the group."""
    if not isinstance(body, dict):
        return
    for key, members in body.items():
        if isinstance(key, str) and key.lower() == "members" and isinstance(members, list):
            for index, element in enumerate(members):
                value = element.get("value") if isinstance(element, dict) else None
                if not isinstance(value, str) or not value:
                    raise InvalidValue(f'members[{index}] needs a "value": the id of a user')


def create_group(session: Session, ctx: RequestContext, body: Any) -> RenderedGroup:
    rt = group_type(ctx)
    _require_member_values(body)
    doc, member_ids = _split_members(parse_resource(rt, body))
    members = store.resolve_members(session, ctx.principal.org_id, member_ids or [])
    group = Group(
        id=str(uuid.uuid4()),
        org_id=ctx.principal.org_id,
        owner_connection_id=ctx.principal.connection_id,
        created_at=utcnow(),
    )
    ctx.audit.user_name = None
    session.add(group)
    _write(session, ctx, group, doc)
    added = store.add_members(session, group, members)
    changed = _recompute(session, ctx, [pk for pk, _ in added], doc)
    _record(ctx, group, None, doc, added, (), changed, {pk: uid for pk, uid in added})
    return RenderedGroup(render_head(ctx, group), etag_of(group.version), group.pk)


def get_group(session: Session, ctx: RequestContext, group_id: str) -> RenderedGroup:
    group = _load(session, ctx, group_id, for_update=False)
    return RenderedGroup(render_head(ctx, group), etag_of(group.version), group.pk)


def replace_group(
    session: Session, ctx: RequestContext, group_id: str, body: Any, if_match: str | None
) -> RenderedGroup:
    """PUT: attributes and the whole member set (Okta's full push) are replaced."""
    rt = group_type(ctx)
    group = _load(session, ctx, group_id, for_update=True)
    guards.require_owner(session, ctx, "Group", group)
    check_if_match(if_match, etag_of(group.version))
    previous = group.data
    _require_member_values(body)
    doc, member_ids = _split_members(parse_resource(rt, body, existing=previous))
    members = store.resolve_members(session, ctx.principal.org_id, member_ids or [])
    renamed = doc.get("displayName") != previous.get("displayName") or doc.get(
        "externalId"
    ) != previous.get("externalId")
    if doc != previous:
        _write(session, ctx, group, doc)
    added, removed = store.replace_members(session, group, members)
    if (added or removed) and doc == previous:
        _touch(session, group)
    touched = added + removed + (store.member_users(session, group) if renamed else [])
    changed = _recompute(session, ctx, [pk for pk, _ in touched], previous, doc)
    _record(ctx, group, previous, doc, added, removed, changed, dict(touched))
    return RenderedGroup(render_head(ctx, group), etag_of(group.version), group.pk)


def _is_members_path(rt: ResourceType, path: str) -> tuple[bool, Any]:
    parsed = parse_patch_path(path)
    attr = parsed.attr
    core = attr.uri is None or attr.uri.lower() == rt.schema.id.lower()
    return core and attr.attr.lower() == "members", parsed


def _member_values(value: Any, label: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    ids: list[str] = []
    for item in items:
        member = item.get("value") if isinstance(item, dict) else None
        if not isinstance(member, str) or not member:
            raise InvalidValue(f'{label}: each member needs a "value" (a user id)')
        ids.append(member)
    return ids


def _filter_ids(expr: Expr) -> list[str] | None:
    """The ids of ``value eq "a" or value eq "b"`` filters; None for any other filter."""
    if isinstance(expr, Compare) and expr.path.attr.lower() == "value" and expr.path.sub is None:
        if expr.op == "eq" and isinstance(expr.value, str):
            return [expr.value]
        return None
    if isinstance(expr, Or):
        left, right = _filter_ids(expr.left), _filter_ids(expr.right)
        return None if left is None or right is None else left + right
    return None


def _matching_members(session: Session, ctx: RequestContext, group: Group, expr: Expr) -> list[str]:
    """Members a value filter selects: by id when it names ids (Okta, Entra), else evaluated."""
    ids = _filter_ids(expr)
    if ids is not None:
        return store.member_ids_matching(session, group, ids)
    attribute = group_type(ctx).schema.attribute("members")
    assert attribute is not None
    predicate = compile_element_filter(attribute, expr)
    return [
        element["value"]
        for _, element in stream_members(
            session, ctx, [group.pk], ("value", "$ref", "type", "display")
        )
        if predicate(element)
    ]


def patch_group(
    session: Session, ctx: RequestContext, group_id: str, body: Any, if_match: str | None
) -> RenderedGroup:
    rt = group_type(ctx)
    operations = parse_operations(body)
    group = _load(session, ctx, group_id, for_update=True)
    guards.require_owner(session, ctx, "Group", group)
    check_if_match(if_match, etag_of(group.version))
    previous = group.data

    regular: list[Operation] = []
    added: store.Changed = []
    removed: store.Changed = []
    org_id = ctx.principal.org_id
    for operation in operations:
        try:
            member_value: Any = None
            target = None
            if operation.path is None:
                value = operation.value
                if isinstance(value, dict):
                    key = next((k for k in value if k.lower() == "members"), None)
                    if key is not None:
                        member_value = value[key]
                        rest = {k: v for k, v in value.items() if k != key}
                        if rest:
                            regular.append(Operation(operation.index, operation.op, None, rest))
                    else:
                        regular.append(operation)
                else:
                    regular.append(operation)
                if member_value is None:
                    continue
            else:
                is_members, target = _is_members_path(rt, operation.path)
                if not is_members:
                    regular.append(operation)
                    continue
                member_value = operation.value
                if target.sub is not None or target.attr.sub is not None:
                    raise Mutability(
                        "members' sub-attributes cannot be changed; add or remove the member"
                    )
            value_filter = target.value_filter if target is not None else None
            if operation.op == "remove":
                if value_filter is not None:
                    ids = _matching_members(session, ctx, group, value_filter)
                elif member_value is not None:  # Entra: remove with a value array
                    ids = _member_values(member_value, "remove")
                else:
                    removed += store.remove_all_members(session, group)
                    continue
                removed += store.remove_members(session, group, ids)
                continue
            if operation.op == "replace" and value_filter is not None:
                removed += store.remove_members(
                    session, group, _matching_members(session, ctx, group, value_filter)
                )
                operation_kind = "add"
            else:
                operation_kind = operation.op
            ids = (
                _member_values(member_value, operation.op) if member_value not in (None, []) else []
            )
            members = store.resolve_members(session, org_id, ids)
            if operation_kind == "replace":
                now_added, now_removed = store.replace_members(session, group, members)
                added += now_added
                removed += now_removed
            else:
                added += store.add_members(session, group, members)
        except ScimError as error:
            raise type(error)(f"{operation.label}: {error.detail}", headers=error.headers) from None

    doc = previous
    if regular:
        patched = apply_operations(rt, previous, regular)
        doc, _ = _split_members(parse_resource(rt, patched, existing=previous))
    renamed = doc.get("displayName") != previous.get("displayName") or doc.get(
        "externalId"
    ) != previous.get("externalId")
    if doc != previous:
        _write(session, ctx, group, doc)
    elif added or removed:
        _touch(session, group)
    touched = added + removed + (store.member_users(session, group) if renamed else [])
    changed = _recompute(session, ctx, [pk for pk, _ in touched], previous, doc)
    _record(ctx, group, previous, doc, added, removed, changed, dict(touched))
    return RenderedGroup(render_head(ctx, group), etag_of(group.version), group.pk)


def delete_group(
    session: Session, ctx: RequestContext, group_id: str, if_match: str | None
) -> None:
    group = _load(session, ctx, group_id, for_update=True)
    guards.require_owner(session, ctx, "Group", group)
    check_if_match(if_match, etag_of(group.version))
    removed = store.remove_all_members(session, group)
    previous = group.data
    session.delete(group)
    session.flush()
    changed = _recompute(session, ctx, [pk for pk, _ in removed], previous)
    _record(ctx, group, previous, None, (), removed, changed, dict(removed))


@functools.cache
def _group_list_source() -> paging.ListSource:
    """What ``/Groups`` list requests select."""
    return paging.ListSource(
        columns=(Group,),
        pk=Group.pk,
        conditions=(Group.org_id == bindparam("org_id"),),
    )


def list_groups(session: Session, ctx: RequestContext, query: ListQuery) -> Page:
    rt = group_type(ctx)
    projection = parse_projection(rt, query.attributes, query.excluded_attributes)
    listing, parameters = paging.prepared_listing(
        rt, store.GROUP_STORAGE, _group_list_source(), query, ctx.principal.org_id
    )

    def render_page(page: Sequence[Group]) -> list[dict[str, Any]]:
        """Heads of the page's groups, their members (when projected) in one streamed query."""
        heads = {group.pk: render_head(ctx, group) for group in page}
        keys = member_projector(ctx, projection)
        if keys is not None and heads:
            for group_pk, element in stream_members(session, ctx, list(heads), keys):
                heads[group_pk].setdefault("members", []).append(element)
        return [apply_projection(rt, heads[group.pk], projection) for group in page]

    if query.cursor is not None:
        return paging.cursor_page(
            session,
            ctx,
            "Group",
            query,
            listing,
            parameters,
            lambda rows: render_page([row[0] for row in rows]),
        )
    total, rows = paging.index_page(session, query, listing, parameters)
    resources = render_page([row[0] for row in rows])
    return Page(total=total, start_index=query.start_index, resources=resources)
