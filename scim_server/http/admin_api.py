"""The admin API, ``/admin/v1`` (DESIGN §1): what an IT admin automates, with an admin token.

Tokens of scope ``admin`` only (``scim-server token create --scope admin``): a connection's or an
auditor's token is refused (403). Every request is one provisioning-log event, as on every
audited surface; a change commits with its event (``services.transaction``), under the same
operation names as the CLI's (``org.update``, ``deprovisioning.release``, ...), with actor type
``admin``. Errors use the SCIM error schema; an id of another organisation's connection, hold
or user is a 404, as if it did not exist.

The endpoints: the organisation's settings (read, change), its connections (list, create,
rotate, revoke, a new OAuth client secret: a new secret is in the answer only, its prefix in the
event; ownership transfer), its tokens (list by prefix, revoke), its roles and access groups
(list, create, delete), its group mappings (list, add, remove), the mass-deprovisioning guard's
holds (list, read, release, reject), invitations (list, resend, cancel), unlocking a user, the
domain policy's report, and its users as CSV (export; an import runs longer than a request
should, so it stays in the CLI). Everything else an admin does is in the CLI.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, current_app, request, stream_with_context
from sqlalchemy.orm import Session

from scim_server.config import Settings
from scim_server.http.auth import require_principal
from scim_server.http.context import request_context
from scim_server.http.errors import SCIM_CONTENT_TYPE, render_scim_error
from scim_server.http.provisioning_log import current_draft
from scim_server.http.scim import json_body, optional_json_body
from scim_server.policy.lifecycle import LOCKED
from scim_server.scim import discovery
from scim_server.scim.errors import InvalidValue, NotFound, ScimError
from scim_server.scim.schema import ACCESS_USER
from scim_server.services import (
    access,
    connections,
    deprovisioning,
    lifecycle,
    oauth,
    organizations,
    tokens,
    user_csv,
)
from scim_server.services.context import RequestContext
from scim_server.services.errors import ServiceError
from scim_server.services.tokens import parse_duration
from scim_server.services.transaction import perform_write
from scim_server.store.db import Database
from scim_server.store.models import Connection, Organization, User

bp = Blueprint("admin", __name__, url_prefix="/admin/v1")

OPERATIONS = {
    "admin.show_organization": "org.read",
    "admin.update_organization": "org.update",
    "admin.list_connections": "connection.list",
    "admin.create_connection": "connection.create",
    "admin.rotate_connection": "connection.rotate",
    "admin.revoke_connection": "connection.revoke",
    "admin.create_oauth_client": "connection.oauth",
    "admin.transfer_ownership": "connection.transfer",
    "admin.list_invitations": "invitation.list",
    "admin.resend_invitation": "invitation.resend",
    "admin.cancel_invitation": "invitation.cancel",
    "admin.unlock_user": "user.unlock",
    "admin.policy_check": "policy.check",
    "admin.list_tokens": "token.list",
    "admin.revoke_token": "token.revoke",
    "admin.list_roles": "role.list",
    "admin.create_role": "role.create",
    "admin.delete_role": "role.delete",
    "admin.list_access_groups": "access_group.list",
    "admin.create_access_group": "access_group.create",
    "admin.delete_access_group": "access_group.delete",
    "admin.export_users": "users.export",
    "admin.list_mappings": "mapping.list",
    "admin.add_mapping": "mapping.add",
    "admin.remove_mapping": "mapping.remove",
    "admin.list_holds": "deprovisioning.list",
    "admin.show_hold": "deprovisioning.read",
    "admin.release": "deprovisioning.release",
    "admin.reject": "deprovisioning.reject",
}


#: The body of the endpoints that act on one user.
USER = frozenset({"user"})
#: The largest key of a hold or a mapping (INTEGER): a larger id exists nowhere.
MAX_ID = 2**31 - 1
#: What PATCH /organization takes: what GET shows (but slug and name), and two actions.
SETTINGS = (
    "ssoDomain",
    "allowedDomains",
    "allowSubdomains",
    "seatLimit",
    "exemptDomains",
    "timezone",
    "deleteMode",
    "softDeleteRetentionDays",
    "deprovisionLimit",
    "deprovisionWindowMinutes",
    "defaultRole",
    "deactivateOutside",
)


@bp.before_request
def _authenticate() -> None:
    require_principal("admin")


@bp.errorhandler(ServiceError)
def _refused(error: ServiceError) -> Response:
    """An admin rule broken (a bad setting, SSO with users outside it): 400, its message; a
    refusal that is also a SCIM error (the last-admin guard's 409) keeps its status."""
    if isinstance(error, ScimError):
        return render_scim_error(error)
    return render_scim_error(InvalidValue(str(error)))


def _answer(body: Any, status: int = 200) -> Response:
    response = Response(json.dumps(body), status=status, content_type=SCIM_CONTENT_TYPE)
    if isinstance(body, dict) and ("token" in body or "clientSecret" in body):
        # a secret, shown once: never cached
        response.headers["Cache-Control"] = "no-store"
    return response


def _database() -> Database:
    database: Database = current_app.extensions["scim_db"]
    return database


def _write(action: Callable[..., Any], *args: Any, status: int = 200) -> Any:
    """Run ``action(session, ctx, *args)`` as a write: its event commits with it."""
    principal = require_principal("admin")
    return perform_write(_database(), request_context(principal), status, action, *args)


def _scim_base_url() -> str:
    settings: Settings = current_app.extensions["scim_settings"]
    return (settings.base_url or f"{request.host_url.rstrip('/')}/scim/v2").rstrip("/")


def _organization(session: Session, ctx: RequestContext) -> Organization:
    return session.get_one(Organization, ctx.principal.org_id)


def _read(view: Callable[[Session, Organization], Any]) -> Response:
    """A read endpoint: ``view(session, org)`` of the caller's organisation, answered as JSON."""
    principal = require_principal("admin")
    with _database().transaction(write=False) as session:
        return _answer(view(session, session.get_one(Organization, principal.org_id)))


# -- organisation ----------------------------------------------------------------------------


@bp.get("/organization")
def show_organization() -> Response:
    return _read(organizations.show)


def _text(name: str, value: Any, *, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        kind = "a string or null" if nullable else "a string"
        raise InvalidValue(f'"{name}" must be {kind}, got {json.dumps(value)[:64]}')
    return value


def _domains(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidValue(f'"{name}" must be a list of domain names, got {json.dumps(value)[:64]}')
    for item in value:  # the CLI's comma-separated text is joined from them: one domain each
        if "," in item or not item.strip():
            raise InvalidValue(f'"{name}": each element is one domain name, got {item[:64]!r}')
    return organizations.parse_domain_list(",".join(value), name)


def _whole(name: str, value: Any, *, nullable: bool = False) -> str:
    if value is None and nullable:
        return "none"
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "an integer or null" if nullable else "an integer"
        raise InvalidValue(f'"{name}" must be {kind}, got {json.dumps(value)[:64]}')
    return str(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue(f'"{name}" must be true or false, got {json.dumps(value)[:64]}')
    return value


def _settings_from(body: Any) -> tuple[organizations.SettingsUpdate, str | None, bool]:
    """The JSON of PATCH /organization as the CLI's settings: the same names as GET shows."""
    if not isinstance(body, dict) or not body:
        raise InvalidValue("the body must be a JSON object of the settings to change")
    update = organizations.SettingsUpdate()
    default_role: str | None = organizations.KEEP
    deactivate_outside = False
    for name, value in body.items():
        if name == "ssoDomain":
            text = _text(name, value, nullable=True)
            update.sso_domain = None if text is None else organizations.parse_domain(text, name)
        elif name == "allowedDomains":
            update.allowed_domains = _domains(name, value)
        elif name == "allowSubdomains":
            update.allow_subdomains = _flag(name, value)
        elif name == "seatLimit":
            update.seat_limit = organizations.parse_seat_limit(
                _whole(name, value, nullable=True), name
            )
        elif name == "exemptDomains":
            update.exempt_domains = _domains(name, value)
        elif name == "timezone":
            update.timezone = organizations.parse_timezone(str(_text(name, value)), name)
        elif name == "deleteMode":
            update.delete_mode = organizations.parse_delete_mode(str(_text(name, value)), name)
        elif name == "softDeleteRetentionDays":
            update.soft_delete_retention_days = organizations.parse_retention_days(
                _whole(name, value), name
            )
        elif name == "deprovisionLimit":
            text = (
                "off" if value is None else value if isinstance(value, str) else _whole(name, value)
            )
            limit, is_percent = deprovisioning.parse_limit(text, name)
            update.deprovision_limit, update.deprovision_limit_is_percent = limit, is_percent
        elif name == "deprovisionWindowMinutes":
            update.deprovision_window_minutes = deprovisioning.parse_window(
                _whole(name, value), name
            )
        elif name == "defaultRole":
            default_role = _text(name, value, nullable=True)
            if default_role is not None and default_role.strip().lower() == "none":
                default_role = None  # as the CLI's --default-role none
        elif name == "deactivateOutside":
            deactivate_outside = _flag(name, value)
        else:
            raise InvalidValue(
                f'unknown setting "{name[:64]}"; the settings are: {", ".join(SETTINGS)}'
            )
    if update.is_empty() and default_role is organizations.KEEP and not deactivate_outside:
        raise InvalidValue("nothing to change: give a setting, defaultRole or deactivateOutside")
    return update, default_role, deactivate_outside


def _change_settings(
    session: Session,
    ctx: RequestContext,
    update: organizations.SettingsUpdate,
    default_role: str | None,
    deactivate_outside: bool,
) -> dict[str, Any]:
    org = _organization(session, ctx)
    outcome = organizations.change_settings(
        session,
        org,
        update,
        default_role=default_role,
        deactivate_outside=deactivate_outside,
        spelling=organizations.API,
    )
    ctx.audit.resource_type, ctx.audit.resource_id = "Organization", org.slug
    ctx.audit.changes = outcome.event_changes()
    return outcome.result(org.slug)


@bp.patch("/organization")
def update_organization() -> Response:
    update, default_role, deactivate_outside = _settings_from(json_body())
    return _answer(_write(_change_settings, update, default_role, deactivate_outside))


# -- connections -----------------------------------------------------------------------------


@bp.get("/connections")
def list_connections() -> Response:
    return _read(
        lambda session, org: {
            "connections": [view.to_dict() for view in connections.list_connections(session, org)]
        }
    )


def _object(allowed: set[str], required: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The request's JSON object, with only ``allowed`` members and all ``required`` ones."""
    body = optional_json_body()
    if body is None:
        body = {}
    if not isinstance(body, dict) or set(body) - allowed or required - set(body):
        names = ", ".join(f'"{name}"' for name in sorted(allowed))
        needed = f" ({', '.join(sorted(required))} required)" if required else ""
        raise InvalidValue(f"the body must be a JSON object of {names}{needed}")
    return body


def _create_connection(
    session: Session, ctx: RequestContext, name: str, idp: str
) -> dict[str, Any]:
    org = _organization(session, ctx)
    created, token = tokens.create_connection(session, org, name, idp)
    ctx.audit.resource_type, ctx.audit.resource_id = "Connection", created.id
    ctx.audit.token_prefix = tokens.token_prefix(token)  # of the new token, never the token
    ctx.audit.changes = {"name": [None, name], "idp": [None, idp]}
    return {"id": created.id, "name": name, "idp": idp, "baseUrl": _scim_base_url(), "token": token}


@bp.post("/connections")
def create_connection() -> Response:
    """A new connection and its token, shown in this answer only."""
    body = _object({"name", "idp"}, frozenset({"name"}))
    name = _text("name", body["name"])
    if not name or not name.strip():
        raise InvalidValue('"name" must not be empty')
    idp = str(_text("idp", body.get("idp", "generic")))
    return _answer(_write(_create_connection, name.strip(), idp, status=201), 201)


def _renew(
    session: Session,
    ctx: RequestContext,
    connection_id: str,
    overlap: timedelta,
    renew: tokens.Renewal,
    changed: str,
) -> tuple[Connection, str, list[dict[str, Any]]]:
    """A new credential of the caller's connection ``connection_id`` (``renew``: a bearer token,
    an OAuth client secret); the previous ones end after ``overlap``. The event keeps the new
    credential's prefix (the actor is the admin), never the credential."""
    org = _organization(session, ctx)
    target = connections.connection_by_id(session, org.id, connection_id)
    secret, ended = renew(session, org, target, overlap)
    previous = [change.view() for change in ended]
    ctx.audit.resource_type, ctx.audit.resource_id = "Connection", target.id
    new_prefix = tokens.token_prefix(secret)
    ctx.audit.token_prefix = new_prefix
    ctx.audit.changes = {changed: [None, new_prefix], "oldTokens": previous}
    return target, secret, previous


def _overlap() -> timedelta:
    """The optional body ``{"overlap": "24h"}`` of a renewal."""
    body = _object({"overlap"})
    return parse_duration(str(_text("overlap", body.get("overlap", "24h"))), '"overlap"')


def _rotate(
    session: Session, ctx: RequestContext, connection_id: str, overlap: timedelta
) -> dict[str, Any]:
    target, secret, previous = _renew(
        session, ctx, connection_id, overlap, tokens.rotate_connection_token, "newToken"
    )
    return {
        "id": target.id,
        "baseUrl": _scim_base_url(),
        "token": secret,
        "previousTokens": previous,
    }


@bp.post("/connections/<connection_id>/rotate")
def rotate_connection(connection_id: str) -> Response:
    """A new token for the connection; its old ones end after ``overlap`` (default 24h)."""
    return _answer(_write(_rotate, connection_id, _overlap()))


def _oauth_client(
    session: Session, ctx: RequestContext, connection_id: str, overlap: timedelta
) -> dict[str, Any]:
    target, secret, previous = _renew(
        session, ctx, connection_id, overlap, oauth.issue_client_secret, "newSecret"
    )
    base_url = _scim_base_url()
    return {
        "id": target.id,
        "baseUrl": base_url,
        "tokenEndpoint": discovery.token_endpoint(base_url),
        "clientId": target.id,
        "clientSecret": secret,
        "previousTokens": previous,
    }


@bp.post("/connections/<connection_id>/oauth-client")
def create_oauth_client(connection_id: str) -> Response:
    """A new OAuth client secret for the connection (its client id is the connection's id);
    a previous secret and its access tokens end after ``overlap`` (default 24h)."""
    return _answer(_write(_oauth_client, connection_id, _overlap()))


def _revoke(session: Session, ctx: RequestContext, connection_id: str) -> dict[str, Any]:
    org = _organization(session, ctx)
    target = connections.connection_by_id(session, org.id, connection_id)
    ended = [change.view() for change in tokens.revoke_connection_tokens(session, org, target)]
    ctx.audit.resource_type, ctx.audit.resource_id = "Connection", target.id
    ctx.audit.changes = {"oldTokens": ended}
    return {"id": target.id, "revoked": ended}


@bp.post("/connections/<connection_id>/revoke")
def revoke_connection(connection_id: str) -> Response:
    """Every live token of the connection stops working now (a leaked secret)."""
    _object(set())
    return _answer(_write(_revoke, connection_id))


def _transfer(session: Session, ctx: RequestContext, source: str, target: str) -> dict[str, Any]:
    org = _organization(session, ctx)
    moved = connections.transfer_ownership(session, org, source, target)
    ctx.audit.resource_type, ctx.audit.resource_id = "Connection", moved.source.id
    ctx.audit.changes = {
        "owner": [moved.source.id, moved.target.id],
        "usersMoved": moved.users,
        "groupsMoved": moved.groups,
    }
    return {
        "from": {"id": moved.source.id, "name": moved.source.name},
        "to": {"id": moved.target.id, "name": moved.target.name},
        "users": moved.users,
        "groups": moved.groups,
    }


@bp.post("/connections/transfer")
def transfer_ownership() -> Response:
    """``{"from", "to"}`` (connection ids or names): the users and groups ``from`` owns become
    ``to``'s (an IdP migration), as ``connection transfer``."""
    body = _object({"from", "to"}, frozenset({"from", "to"}))
    source, target = str(_text("from", body["from"])), str(_text("to", body["to"]))
    return _answer(_write(_transfer, source, target))


@bp.get("/tokens")
def list_tokens() -> Response:
    """The organisation's live tokens by prefix (``?all=true``: ended ones too), as
    ``token list --json``: what there is to rotate or revoke."""
    ended = _flag_argument("all")
    return _read(
        lambda session, org: {
            "tokens": [view.to_dict() for view in tokens.list_tokens(session, org, ended=ended)]
        }
    )


def _revoke_token(session: Session, ctx: RequestContext, prefix: str) -> dict[str, Any]:
    org = _organization(session, ctx)
    try:
        ended, *issued = tokens.revoke_token(session, org, prefix)
    except tokens.NoSuchToken as missing:
        raise NotFound(str(missing)) from None
    ctx.audit.resource_type, ctx.audit.resource_id = "Token", ended.prefix
    ctx.audit.changes = tokens.revocation_changes(ended, issued)
    return {**ended.view(), "issuedTokens": [change.view() for change in issued]}


@bp.post("/tokens/revoke")
def revoke_token() -> Response:
    """``{"prefix": ...}`` (or the whole leaked token, cut to its prefix and never echoed): that
    token of the organisation stops working now, as ``token revoke``."""
    body = _object({"prefix"}, frozenset({"prefix"}))
    prefix = str(_text("prefix", body["prefix"])).strip()
    if not prefix:
        raise InvalidValue('"prefix" must be the start of a token, e.g. scim_Ab3dE9')
    return _answer(_write(_revoke_token, prefix))


def _flag_argument(name: str) -> bool:
    value = request.args.get(name, "false").strip().lower()
    if value not in ("true", "false"):
        raise InvalidValue(f'"{name}" must be true or false, got "{value[:16]}"')
    return value == "true"


# -- users: invitations, unlock, the domain policy's report -----------------------------------


def _named_user(body: dict[str, Any]) -> str:
    name = str(_text("user", body["user"])).strip()
    if not name:
        raise InvalidValue('"user" must be a userName or a user id')
    return name


def _user_action(
    session: Session,
    ctx: RequestContext,
    action: Callable[[Session, Organization, str], tuple[Any, dict[str, Any], dict[str, Any]]],
    name: str,
) -> dict[str, Any]:
    """``action(session, org, name)`` on one user, named by userName or id: a 404 for a user
    the organisation does not have; the event names the user and what changed."""
    org = _organization(session, ctx)
    try:
        user, changes, answer = action(session, org, name)
    except lifecycle.NoSuchUser:
        raise NotFound(f'user "{name[:64]}" not found') from None
    ctx.audit.resource_type, ctx.audit.resource_id = "User", user.id
    ctx.audit.user_name = user.user_name
    ctx.audit.changes = changes
    return {"id": user.id, "userName": user.user_name, **answer}


def _resend(
    session: Session, org: Organization, name: str
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    issued = lifecycle.resend_invitation(session, org.id, name)
    user = session.get_one(User, issued.invitation.user_pk)
    summary = issued.summary()
    return user, {"invitation": [None, summary]}, {"invitation": summary}


def _cancel(
    session: Session, org: Organization, name: str
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    user = lifecycle.cancel_invitation(session, org.id, name)
    return user, {"invitation": ["pending", None]}, {"cancelled": True}


def _unlock(
    session: Session, org: Organization, name: str
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    user, status = lifecycle.unlock_user(session, org, name)
    return user, {f"{ACCESS_USER}:status": [LOCKED, status]}, {"status": status}


@bp.get("/invitations")
def list_invitations() -> Response:
    """The invitations, oldest first (``?pending=true``: only those still usable); link tokens
    are never shown."""
    pending = _flag_argument("pending")
    return _read(
        lambda session, org: {
            "invitations": lifecycle.list_invitations(session, org.id, pending_only=pending)
        }
    )


@bp.post("/invitations/resend")
def resend_invitation() -> Response:
    """``{"user": userName or id}``: a new invitation (a new link) for an invited user; the old
    link stops working. The mailer takes it from the outbox (``invitation drain``)."""
    return _answer(_write(_user_action, _resend, _named_user(_object({"user"}, USER))))


@bp.post("/invitations/cancel")
def cancel_invitation() -> Response:
    """``{"user": userName or id}``: the user's pending invitation stops working; the user
    stays invited (resend to invite again)."""
    return _answer(_write(_user_action, _cancel, _named_user(_object({"user"}, USER))))


@bp.post("/users/unlock")
def unlock_user() -> Response:
    """``{"user": userName or id}``: lift a lock the host product set (SCIM cannot)."""
    return _answer(_write(_user_action, _unlock, _named_user(_object({"user"}, USER))))


@bp.get("/policy-check")
def policy_check() -> Response:
    """The users in the store the current domain policy would refuse, as ``policy check``."""
    return _read(lambda session, org: organizations.policy_report(session, org).to_dict())


# -- roles and access groups -------------------------------------------------------------------


@bp.get("/roles")
def list_roles() -> Response:
    return _read(
        lambda session, org: {"roles": [view.to_dict() for view in access.list_roles(session, org)]}
    )


def _create_role(
    session: Session, ctx: RequestContext, name: str, rank: int, permissions: list[str], admin: bool
) -> dict[str, Any]:
    org = _organization(session, ctx)
    created = access.create_role(
        session, org, name, rank=rank, permissions=permissions, is_admin=admin
    )
    ctx.audit.resource_type, ctx.audit.resource_id = "Role", created.name[:64]
    ctx.audit.changes = access.role_created_changes(created)
    return created.to_dict()


def _strings(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidValue(f'"{name}" must be a list of strings, got {json.dumps(value)[:64]}')
    return value


@bp.post("/roles")
def create_role() -> Response:
    """A custom role: ``{"name", "rank", "permissions": [...], "isAdmin": false}``."""
    body = _object({"name", "rank", "permissions", "isAdmin"}, frozenset({"name", "rank"}))
    rank = int(_whole("rank", body["rank"]))
    if not -MAX_ID <= rank <= MAX_ID:
        raise InvalidValue(f'"rank" must be between {-MAX_ID} and {MAX_ID}, got {rank}')
    permissions = _strings("permissions", body.get("permissions", []))
    is_admin = _flag("isAdmin", body.get("isAdmin", False))
    created = _write(
        _create_role,
        str(_text("name", body["name"])),
        rank,
        permissions,
        is_admin,
        status=201,
    )
    return _answer(created, 201)


def _delete_named(
    session: Session,
    ctx: RequestContext,
    name: str,
    delete: Callable[[Session, Organization, str], access.Removal],
    resource_type: str,
) -> dict[str, Any]:
    org = _organization(session, ctx)
    try:
        removed = delete(session, org, name)
    except access.NoSuchName:
        raise NotFound(f'{resource_type} "{name[:64]}" not found') from None
    users = access.affected_users(session, removed.changes)
    ctx.audit.resource_type, ctx.audit.resource_id = resource_type, removed.name[:64]
    ctx.audit.changes = removed.event_changes(users)
    return removed.result(users)


@bp.delete("/roles/<name>")
def delete_role(name: str) -> Response:
    """Delete a custom role and the mappings granting it; its holders are recomputed."""
    return _answer(_write(_delete_named, name, access.delete_role, "Role"))


@bp.get("/access-groups")
def list_access_groups() -> Response:
    return _read(
        lambda session, org: {
            "accessGroups": [view.to_dict() for view in access.list_access_groups(session, org)]
        }
    )


def _create_access_group(
    session: Session, ctx: RequestContext, name: str, campaigns: list[str]
) -> dict[str, Any]:
    org = _organization(session, ctx)
    created = access.create_access_group(session, org, name, campaigns)
    ctx.audit.resource_type, ctx.audit.resource_id = "AccessGroup", created.name[:64]
    ctx.audit.changes = {"name": [None, created.name], "campaignIds": [None, created.campaign_ids]}
    return created.to_dict()


@bp.post("/access-groups")
def create_access_group() -> Response:
    """An access group: ``{"name", "campaignIds": [...]}``."""
    body = _object({"name", "campaignIds"}, frozenset({"name"}))
    campaigns = _strings("campaignIds", body.get("campaignIds", []))
    created = _write(_create_access_group, str(_text("name", body["name"])), campaigns, status=201)
    return _answer(created, 201)


@bp.delete("/access-groups/<name>")
def delete_access_group(name: str) -> Response:
    """Delete an access group and the mappings granting it; the users it reached are
    recomputed."""
    return _answer(_write(_delete_named, name, access.delete_access_group, "AccessGroup"))


# -- users ---------------------------------------------------------------------------------------


@bp.get("/users.csv")
def export_users() -> Response:
    """Every user as CSV, streamed: the columns of ``scim-server users export``."""
    principal = require_principal("admin")
    database = _database()
    with database.transaction(write=False) as session:
        org = session.get_one(Organization, principal.org_id)
        session.expunge(org)
    draft = current_draft()
    if draft is not None:
        draft.resource_type = "User"
        draft.detail = "users exported as CSV (streamed)"
    rows = user_csv.export_rows(
        database, current_app.extensions["scim_registry"], org, _scim_base_url()
    )
    response = Response(stream_with_context(user_csv.csv_text(rows)), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="users-{org.slug}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


# -- group mappings ----------------------------------------------------------------------------

_MATCHES = {
    "groupName": "group_name",
    "groupPrefix": "group_prefix",
    "groupExternalId": "group_external_id",
}
_GRANTS = {"role": "role", "accessGroup": "access_group"}


@bp.get("/mappings")
def list_mappings() -> Response:
    return _read(
        lambda session, org: {
            "mappings": [view.to_dict() for view in access.list_mappings(session, org)]
        }
    )


def _add_mapping(session: Session, ctx: RequestContext, given: dict[str, str]) -> dict[str, Any]:
    org = _organization(session, ctx)
    change = access.add_mapping(session, org, **given)
    users = access.affected_users(session, change.changes)
    ctx.audit.resource_type, ctx.audit.resource_id = "GroupMapping", str(change.mapping.id)
    ctx.audit.changes = {**change.mapping.event_changes(True), "affectedUsers": users}
    return {"mapping": change.mapping.to_dict(), "affectedUsers": users}


@bp.post("/mappings")
def add_mapping() -> Response:
    """Map IdP groups to a role or an access group; answers the users whose access changed."""
    body = _object(set(_MATCHES) | set(_GRANTS))
    matches = [name for name in _MATCHES if name in body]
    grants = [name for name in _GRANTS if name in body]
    if len(matches) != 1 or len(grants) != 1:
        raise InvalidValue(
            'a mapping matches groups by exactly one of "groupName", "groupPrefix", '
            '"groupExternalId" and grants exactly one of "role", "accessGroup"'
        )
    given = {
        _MATCHES[matches[0]]: str(_text(matches[0], body[matches[0]])),
        _GRANTS[grants[0]]: str(_text(grants[0], body[grants[0]])),
    }
    return _answer(_write(_add_mapping, given, status=201), 201)


def _remove_mapping(session: Session, ctx: RequestContext, mapping_id: int) -> dict[str, Any]:
    org = _organization(session, ctx)
    if mapping_id > MAX_ID:
        raise NotFound(f"mapping {mapping_id} not found")
    try:
        change = access.remove_mapping(session, org, mapping_id)
    except access.NoSuchMapping:  # checked under the rules lock: a concurrent remove won
        raise NotFound(f"mapping {mapping_id} not found") from None
    users = access.affected_users(session, change.changes)
    ctx.audit.resource_type, ctx.audit.resource_id = "GroupMapping", str(mapping_id)
    ctx.audit.changes = {**change.mapping.event_changes(False), "affectedUsers": users}
    return {"mapping": change.mapping.to_dict(), "affectedUsers": users}


@bp.delete("/mappings/<int:mapping_id>")
def remove_mapping(mapping_id: int) -> Response:
    """Remove a mapping; answers the users whose access changed."""
    return _answer(_write(_remove_mapping, mapping_id))


# -- the mass-deprovisioning guard -------------------------------------------------------------


@bp.get("/deprovisioning/holds")
def list_holds() -> Response:
    every = request.args.get("all", "").lower() in {"1", "true", "yes"}
    return _read(
        lambda session, org: {"holds": deprovisioning.list_holds(session, org, open_only=not every)}
    )


@bp.get("/deprovisioning/holds/<int:hold_id>")
def show_hold(hold_id: int) -> Response:
    def view(session: Session, org: Organization) -> dict[str, Any]:
        if hold_id <= MAX_ID:
            with contextlib.suppress(ServiceError):
                return deprovisioning.show_hold(session, org, hold_id)
        raise NotFound(f"deprovisioning hold {hold_id} not found")

    return _read(view)


def _duration() -> timedelta | None:
    """``{"for": "2h"}``, or no body: the command's default."""
    body = optional_json_body()
    if body is None:
        body = {}
    if not isinstance(body, dict) or set(body) - {"for"}:
        raise InvalidValue('the body, if any, must be a JSON object with only "for" (e.g. "2h")')
    if body.get("for") is None:
        return None
    return parse_duration(str(_text("for", body["for"])), '"for"')


def _decide(
    session: Session,
    ctx: RequestContext,
    connection_id: str,
    state: str,
    duration: timedelta | None,
) -> Any:
    org = _organization(session, ctx)
    target = connections.connection_by_id(session, org.id, connection_id)
    actor = f"admin:{ctx.principal.token_prefix}"
    decision = deprovisioning.decide(session, org, target, state, duration, actor)
    ctx.audit.resource_type, ctx.audit.resource_id = "Connection", target.id
    ctx.audit.changes = decision.changes()
    return deprovisioning.hold_view(decision.hold, target.name, with_users=False)


@bp.post("/connections/<connection_id>/deprovisioning/release")
def release(connection_id: str) -> Response:
    return _answer(_write(_decide, connection_id, deprovisioning.RELEASED, _duration()))


@bp.post("/connections/<connection_id>/deprovisioning/reject")
def reject(connection_id: str) -> Response:
    return _answer(_write(_decide, connection_id, deprovisioning.REJECTED, _duration()))
