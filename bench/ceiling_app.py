"""The ceiling of the load benchmark (issue #7): the least a SCIM server on this stack can do.

A minimal Flask + SQLAlchemy app that serves the same JSON documents as scim-server from one
SQLite table per resource, without validation, filters beyond ``userName eq``, PATCH semantics,
access recomputation or audit. ``bench/load.py`` runs it on the same gunicorn settings as the
real server and reports every scenario as a ratio to it, so the figures hold on a noisy machine.

Each route is the honest equivalent of one scenario (see docs/PERFORMANCE.md):

* ``POST /Users``: one INSERT of the posted document (the id and ``meta`` added).
* ``GET /Users/<id>``: SELECT by primary key.
* ``GET /Users?filter=userName eq "x"``: SELECT by the indexed ``user_name``; anything else:
  a page with LIMIT/OFFSET (``startIndex``/``count``) and a COUNT; with ``after=<pk>``, the
  keyset page a cursor page is (``pk > after``, LIMIT, no COUNT).
* ``PATCH``/``PUT /Users/<id>``: SELECT, change the document, UPDATE.
* ``PATCH /Groups/<id>``: INSERT or DELETE of membership rows, UPDATE of the group's version.
* ``GET /Groups/<id>``: the group row, and its member rows unless ``excludedAttributes=members``.

Configuration: ``CEILING_DATABASE_URL`` (a SQLite URL). Served by ``bench/ceiling_gunicorn.py``.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from typing import Any

from flask import Flask, Response, request
from sqlalchemy import (
    ForeignKey,
    Index,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

SCIM = "application/scim+json"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
_EQ = re.compile(r'^userName eq "(?P<value>[^"]*)"$')


class Base(DeclarativeBase):
    pass


class UserRow(Base):
    __tablename__ = "users"
    pk: Mapped[int] = mapped_column(primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    user_name: Mapped[str] = mapped_column(String(255), unique=True)
    document: Mapped[str] = mapped_column(Text)


class GroupRow(Base):
    __tablename__ = "groups"
    pk: Mapped[int] = mapped_column(primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    document: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)


class MemberRow(Base):
    __tablename__ = "members"
    group_pk: Mapped[int] = mapped_column(ForeignKey("groups.pk"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    display: Mapped[str] = mapped_column(String(255))
    __table_args__ = (Index("members_by_user", "user_id"),)


def _engine_url() -> str:
    return os.environ.get("CEILING_DATABASE_URL", "sqlite:///ceiling.db")


engine = create_engine(_engine_url())


@event.listens_for(engine, "connect")
def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """The pragmas scim-server sets on SQLite, so both databases run in the same mode."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


Base.metadata.create_all(engine)
app = Flask(__name__)


def _json(document: Any, status: int = 200) -> Response:
    return Response(json.dumps(document), status=status, mimetype=SCIM)


def _not_found() -> Response:
    return _json({"status": "404"}, 404)


@app.post("/scim/v2/Users")
def create_user() -> Response:
    document = request.get_json(force=True)
    document["id"] = str(uuid.uuid4())
    document["meta"] = {"resourceType": "User", "version": 'W/"1"'}
    with Session(engine) as session, session.begin():
        session.execute(
            insert(UserRow).values(
                id=document["id"], user_name=document["userName"], document=json.dumps(document)
            )
        )
    return _json(document, 201)


@app.get("/scim/v2/Users/<user_id>")
def get_user(user_id: str) -> Response:
    with Session(engine) as session:
        found = session.scalar(select(UserRow.document).where(UserRow.id == user_id))
    return _not_found() if found is None else _json(json.loads(found))


@app.get("/scim/v2/Users")
def list_users() -> Response:
    match = _EQ.match(request.args.get("filter", ""))
    with Session(engine) as session:
        if match:
            rows = list(
                session.scalars(select(UserRow.document).where(UserRow.user_name == match["value"]))
            )
            total = len(rows)
            start = 1
        elif "after" in request.args:  # a keyset page, as a cursor page: no COUNT
            count = int(request.args.get("count", "100"))
            rows = list(
                session.scalars(
                    select(UserRow.document)
                    .where(UserRow.pk > int(request.args["after"]))
                    .order_by(UserRow.pk)
                    .limit(count)
                )
            )
            total = len(rows)
            start = 1
        else:
            start = max(1, int(request.args.get("startIndex", "1")))
            count = int(request.args.get("count", "100"))
            total = session.scalar(select(func.count()).select_from(UserRow)) or 0
            rows = list(
                session.scalars(
                    select(UserRow.document).order_by(UserRow.pk).limit(count).offset(start - 1)
                )
            )
    resources = [json.loads(row) for row in rows]
    return _json(
        {
            "schemas": [LIST],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": len(resources),
            "Resources": resources,
        }
    )


def _rewrite_user(user_id: str, change: dict[str, Any], replace: bool) -> Response:
    with Session(engine) as session, session.begin():
        row = session.scalar(select(UserRow).where(UserRow.id == user_id))
        if row is None:
            return _not_found()
        document = json.loads(row.document)
        meta = document["meta"]
        if replace:
            document = {**change, "id": user_id}
        else:
            document.update(change)
        meta["version"] = f'W/"{int(meta["version"][3:-1]) + 1}"'
        document["meta"] = meta
        row.document = json.dumps(document)
        row.user_name = document["userName"]
    return _json(document)


@app.patch("/scim/v2/Users/<user_id>")
def patch_user(user_id: str) -> Response:
    change: dict[str, Any] = {}
    for operation in request.get_json(force=True)["Operations"]:
        change.update(operation["value"] if "path" not in operation else {})
        if "path" in operation:
            change[operation["path"]] = operation["value"]
    return _rewrite_user(user_id, change, replace=False)


@app.put("/scim/v2/Users/<user_id>")
def put_user(user_id: str) -> Response:
    return _rewrite_user(user_id, request.get_json(force=True), replace=True)


@app.post("/scim/v2/Groups")
def create_group() -> Response:
    document = request.get_json(force=True)
    document["id"] = str(uuid.uuid4())
    document["meta"] = {"resourceType": "Group", "version": 'W/"1"'}
    with Session(engine) as session, session.begin():
        session.execute(insert(GroupRow).values(id=document["id"], document=json.dumps(document)))
    return _json(document, 201)


_MEMBER_EQ = re.compile(r'^members\[value eq "(?P<value>[^"]*)"\]$')


@app.patch("/scim/v2/Groups/<group_id>")
def patch_group(group_id: str) -> Response:
    with Session(engine) as session, session.begin():
        group_pk = session.scalar(select(GroupRow.pk).where(GroupRow.id == group_id))
        if group_pk is None:
            return _not_found()
        for operation in request.get_json(force=True)["Operations"]:
            match = _MEMBER_EQ.match(operation.get("path", ""))
            values = [member["value"] for member in operation.get("value", [])]
            if operation["op"].lower() == "add":
                session.execute(
                    insert(MemberRow),
                    [{"group_pk": group_pk, "user_id": v, "display": v} for v in values],
                )
            else:
                removed = [match["value"]] if match else values
                session.execute(
                    delete(MemberRow).where(
                        MemberRow.group_pk == group_pk, MemberRow.user_id.in_(removed)
                    )
                )
        session.execute(
            update(GroupRow).where(GroupRow.pk == group_pk).values(version=GroupRow.version + 1)
        )
    return Response(status=204)


@app.get("/scim/v2/Groups/<group_id>")
def get_group(group_id: str) -> Response:
    with Session(engine) as session:
        group = session.scalar(select(GroupRow).where(GroupRow.id == group_id))
        if group is None:
            return _not_found()
        document = json.loads(group.document)
        if request.args.get("excludedAttributes") != "members":
            document["members"] = [
                {"value": user_id, "display": display}
                for user_id, display in session.execute(
                    select(MemberRow.user_id, MemberRow.display).where(
                        MemberRow.group_pk == group.pk
                    )
                )
            ]
    return _json(document)


@app.get("/healthz")
def healthz() -> Response:
    return Response("ok", mimetype="text/plain")
