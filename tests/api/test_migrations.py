"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import exc, inspect, text

from scim_server.store.db import Database
from scim_server.store.models import Base


def test_migrations_match_the_models(database: Database) -> None:
    with warnings.catch_warnings():
        # SQLite cannot reflect expression indexes; test_expression_indexes_exist covers them.
        warnings.simplefilter("ignore", exc.SAWarning)
        warnings.simplefilter("ignore", UserWarning)
        with database.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_expression_indexes_exist(database: Database) -> None:
    wanted = {"ux_users_org_user_name", "ix_user_attribute_values_org_attr_value"}
    with database.engine.connect() as connection:
        if database.is_sqlite:
            rows = connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'"))
        else:
            rows = connection.execute(text("SELECT indexname FROM pg_indexes"))
        names = {row[0] for row in rows}
    assert wanted <= names
    assert inspect(database.engine).has_table("audit_events")
