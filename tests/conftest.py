"""Fixtures: every API test runs against SQLite and PostgreSQL, each test in its own organisation.

A fresh organisation per test isolates tests through the product's own tenant isolation, so no
table is truncated between tests. PostgreSQL gets a throw-away database per run and per pytest
worker (created from the ``test`` database), so concurrent runs never see each other. Under
``CI=true`` an unreachable PostgreSQL fails the run; elsewhere its half of the suite is skipped
with the reason shown.
"""

from __future__ import annotations

import itertools
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Result, make_url
from sqlalchemy.orm import ORMExecuteState, Session
from werkzeug.test import TestResponse

from scim_server.app import create_app
from scim_server.config import Settings
from scim_server.services import tokens
from scim_server.store.db import Database
from scim_server.store.migrate import upgrade
from scim_server.store.models import User

POSTGRES_URL = os.environ.get(
    "SCIM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
SCIM = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
_counter = itertools.count()

# Property tests check behaviour, never speed: Hypothesis' default 200 ms deadline per example
# fails them on a loaded machine (seen with the load average at 9 on 2 cores), so it is off.
hypothesis_settings.register_profile("scim-server", deadline=None)
hypothesis_settings.load_profile("scim-server")


def _postgres_database() -> Iterator[str]:
    admin_url = make_url(POSTGRES_URL)
    name = f"scim_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        admin.dispose()
        message = f"PostgreSQL is not reachable at {POSTGRES_URL}: {type(error).__name__}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: PostgreSQL is required)", pytrace=False)
        pytest.skip(f"{message}; set SCIM_TEST_POSTGRES_URL to run the PostgreSQL half")
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "scim.db"
        yield f"sqlite:///{path}"
    else:
        yield from _postgres_database()


@pytest.fixture(scope="session")
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    upgrade(db.engine)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def app(database: Database) -> Flask:
    settings = Settings(database_url=database.url, max_page_size=200, max_body_bytes=256 * 1024)
    flask_app = create_app(settings, database=database)
    flask_app.config["TESTING"] = True
    return flask_app


@dataclass
class Tenant:
    slug: str
    org_id: int
    token: str
    connection_id: str


def make_tenant(database: Database, prefix: str = "t") -> Tenant:
    slug = f"{prefix}{next(_counter)}-{uuid.uuid4().hex[:8]}"
    with database.transaction(write=True) as session:
        org = tokens.create_organization(session, slug, f"Org {slug}")
        conn, token = tokens.create_connection(session, org, "test connection", "generic")
        return Tenant(slug=slug, org_id=org.id, token=token, connection_id=conn.id)


@dataclass
class Api:
    """A SCIM client over the Flask test client, authenticated as one tenant."""

    client: FlaskClient
    tenant: Tenant
    base: str = "/scim/v2"
    headers: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> TestResponse:
        headers = {"Authorization": f"Bearer {self.tenant.token}", **self.headers}
        headers.update(kwargs.pop("headers", {}))
        if body is not None:
            kwargs["json"] = body
            kwargs.setdefault("content_type", SCIM)
        return self.client.open(f"{self.base}{path}", method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> TestResponse:
        return self.request("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> TestResponse:
        return self.request("PUT", path, body, **kwargs)

    def patch(self, path: str, body: Any = None, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", path, **kwargs)

    def create_user(self, user_name: str | None = None, **attributes: Any) -> dict[str, Any]:
        if user_name is not None:
            attributes["userName"] = user_name
        response = self.post("/Users", {"schemas": [USER_SCHEMA], **attributes})
        assert response.status_code == 201, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    def list_users(self, **params: Any) -> dict[str, Any]:
        response = self.get("/Users", query_string=params)
        assert response.status_code == 200, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body


@pytest.fixture
def tenant(database: Database) -> Tenant:
    return make_tenant(database)


@pytest.fixture
def api(app: Flask, tenant: Tenant) -> Api:
    return Api(app.test_client(), tenant)


def patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


class StatementCounter:
    """Counts SQL statements sent by an engine while active (costs that do not depend on timing)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA")):
            self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def count_statements(database: Database) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    event.listen(database.engine, "before_cursor_execute", counter)
    yield counter
    event.remove(database.engine, "before_cursor_execute", counter)


@pytest.fixture
def rows_loaded() -> Iterator[list[int]]:
    """One entry per user document (``users.data``) the server read, ORM entity or plain row:
    what a page costs in rows, whatever way the service loads them."""
    loaded: list[int] = []
    users = User.__table__

    def _count(state: ORMExecuteState) -> Result[Any] | None:
        if not state.is_select or not any(
            getattr(column, "table", None) is users and column.name == "data"
            for column in state.statement.selected_columns
        ):
            return None
        frozen = state.invoke_statement().freeze()
        loaded.extend(1 for _ in frozen().all())
        return frozen()

    event.listen(Session, "do_orm_execute", _count)
    yield loaded
    event.remove(Session, "do_orm_execute", _count)


def store_snapshot(database: Database, org_id: int) -> list[tuple[Any, ...]]:
    """Every user and index row of one organisation: proves a refused request wrote nothing."""
    with database.engine.connect() as connection:
        users = connection.execute(
            text("SELECT id, version, user_name, data FROM users WHERE org_id = :o ORDER BY pk"),
            {"o": org_id},
        ).all()
        values = connection.execute(
            text(
                "SELECT user_pk, attribute, value FROM user_attribute_values "
                "WHERE org_id = :o ORDER BY pk"
            ),
            {"o": org_id},
        ).all()
    return [tuple(row) for row in [*users, *values]]
