"""SQL for effective access (DESIGN §5.2) that differs between SQLite and PostgreSQL.

A user's effective role, access groups and group memberships are read *with* the user, as
correlated subqueries in the same SELECT, so a GET costs one statement and a list page one
statement for the whole page. The JSON aggregate functions those subqueries need are spelled
differently by the two databases; the constructs below compile to each one's spelling.

``upsert_user_access`` writes recomputed ``user_access`` rows with ``INSERT ... ON CONFLICT DO
UPDATE``: two transactions recomputing the same user (two group changes at once) both succeed,
the later one winning, instead of one failing on the primary key.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, ColumnElement, ScalarSelect, String, any_, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Boolean

from scim_server.store.models import AccessGroup, Group, GroupMember, Role, User, UserAccess

#: Rows per INSERT statement: well under both databases' bound-parameter limits.
UPSERT_BATCH = 1000
#: Namespace of the rules advisory locks (PostgreSQL), the organisation id being the other key.
RULES_LOCK_NAMESPACE = 0x7275


class _RulesTurn(FunctionElement[bool]):
    """A condition on the organisation's row that first waits its turn at the organisation's
    rules (PostgreSQL), in a fair queue.

    Every user write holds the organisation row ``FOR SHARE`` and an admin's change of rules or
    settings locks it against them; with row locks alone a stream of writes starved the admin
    (measured: an ``org update`` waited 89 s, until the IdP's traffic stopped), because a new
    sharer joins the current ones without queueing behind a waiting exclusive lock. Advisory
    locks queue in order, so each side takes one here first.

    As a condition of the statement that reads and locks the row it costs no statement and it
    runs first: the scan's filter sits below the row lock. A row an admin changed while this
    waited is still read as committed, since a locking read follows the row to its newest
    version. Its argument is the organisation id *as bound*, never the column: a sequential
    scan (the planner's choice once the small table has statistics) evaluates the filter on
    every row it reads, and with the column it locked every organisation's rules. SQLite runs
    one writer at a time: the condition is true.
    """

    type = Boolean()
    inherit_cache = True
    exclusive = False


class shared_rules_turn(_RulesTurn):
    """Wait while an admin changes the rules; any number of writes share them."""

    inherit_cache = True


class exclusive_rules_turn(_RulesTurn):
    """Wait for the writes that hold the rules to end, ahead of any that come later."""

    inherit_cache = True
    exclusive = True


@compiles(_RulesTurn)
def _rules_turn_elsewhere(element: _RulesTurn, compiler: SQLCompiler, **kw: Any) -> str:
    return "1 = 1"


@compiles(_RulesTurn, "postgresql")
def _rules_turn_postgresql(element: _RulesTurn, compiler: SQLCompiler, **kw: Any) -> str:
    function = "pg_advisory_xact_lock" if element.exclusive else "pg_advisory_xact_lock_shared"
    org_id = compiler.process(element.clauses, **kw)
    return f"{function}({RULES_LOCK_NAMESPACE}, {org_id}) IS NOT NULL"


class _json_function(FunctionElement[Any]):
    """A JSON function that only differs between the databases by its name."""

    type = JSON()
    inherit_cache = True
    #: dialect name -> SQL function name
    sql_names: dict[str, str] = {}


@compiles(_json_function)
def _json_function_sql(element: _json_function, compiler: SQLCompiler, **kw: Any) -> str:
    name = element.sql_names[compiler.dialect.name]
    return f"{name}({compiler.process(element.clauses, **kw)})"


class json_list(_json_function):
    """Aggregate: a JSON array of the values of one expression over the rows of a group."""

    name = "json_list"
    inherit_cache = True
    sql_names = {"postgresql": "json_agg", "sqlite": "json_group_array"}


class json_pair(_json_function):
    """A JSON array of two values (one row of an aggregate)."""

    name = "json_pair"
    inherit_cache = True
    sql_names = {"postgresql": "json_build_array", "sqlite": "json_array"}


class json_array_has(FunctionElement[bool]):
    """``json_array_has(array_column, value)``: the JSON array in the column holds the value."""

    type = Boolean()
    name = "json_array_has"
    inherit_cache = True


@compiles(json_array_has, "postgresql")
def _json_array_has_postgresql(element: json_array_has, compiler: SQLCompiler, **kw: Any) -> str:
    array, value = element.clauses.clauses
    return f"({compiler.process(array, **kw)} @> to_jsonb({compiler.process(value, **kw)}))"


@compiles(json_array_has, "sqlite")
def _json_array_has_sqlite(element: json_array_has, compiler: SQLCompiler, **kw: Any) -> str:
    array, value = element.clauses.clauses
    # compiled SQL fragments, not text from a request
    inner = f"SELECT value FROM json_each({compiler.process(array, **kw)})"  # noqa: S608
    return f"({compiler.process(value, **kw)} IN ({inner}))"


def role_name_of_user() -> ScalarSelect[str | None]:
    """Correlated subquery: the name of the user's effective role, or NULL."""
    return (
        select(Role.name)
        .join(UserAccess, UserAccess.role_pk == Role.pk)
        .where(UserAccess.user_pk == User.pk)
        .correlate(User)
        .scalar_subquery()
    )


def access_groups_of_user() -> ScalarSelect[Any]:
    """Correlated subquery: a JSON array of the names of the user's effective access groups."""
    return (
        select(json_list(AccessGroup.name))
        .select_from(UserAccess)
        .join(AccessGroup, AccessGroup.org_id == UserAccess.org_id)
        .where(
            UserAccess.user_pk == User.pk,
            json_array_has(UserAccess.access_group_pks, AccessGroup.pk),
        )
        .correlate(User)
        .scalar_subquery()
    )


def groups_of_user() -> ScalarSelect[Any]:
    """Correlated subquery: a JSON array of ``[id, displayName]`` of the user's groups."""
    return (
        select(json_list(json_pair(Group.id, Group.display_name)))
        .select_from(GroupMember)
        .join(Group, Group.pk == GroupMember.group_pk)
        .where(GroupMember.user_pk == User.pk)
        .correlate(User)
        .scalar_subquery()
    )


@functools.cache
def user_with_access() -> tuple[Any, ...]:
    """Columns to select after ``User``: role name, access group names, groups.

    Built once: SQL expressions are immutable, and building the three correlated subqueries
    anew cost about a tenth of every user read (profile of issue #7's load benchmark).
    """
    return (
        role_name_of_user().label("access_role"),
        access_groups_of_user().label("access_groups"),
        groups_of_user().label("member_of"),
    )


def in_values(session: Session, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN (values)`` for the session's database (see :func:`in_list`)."""
    return in_list(session.get_bind().dialect.name, column, values=values)


def in_list(
    dialect: str, column: Any, name: str | None = None, values: Sequence[Any] | None = None
) -> ColumnElement[bool]:
    """``column IN (...)``, the list bound as parameter ``name`` (a prebuilt statement) or as
    ``values``; on PostgreSQL ``column = ANY(...)``, the keys bound as one array: an ``IN`` list
    of 100 keys is 100 parameters for psycopg to adapt and the server to parse (issue #7's
    membership PATCH). Plans are custom (``plan_cache_mode``), so the planner sees the array's
    values either way."""
    value = None if values is None else list(values)
    if dialect == "postgresql":
        # no length on the element type: a cast to varchar(36)[] would truncate longer values,
        # and "id + junk" would then match the id
        element = String() if isinstance(column.type, String) else column.type
        array = bindparam(name, value, type_=postgresql.ARRAY(element))
        result: ColumnElement[bool] = column == any_(array)
        return result
    keys: ColumnElement[bool] = column.in_(bindparam(name, value, expanding=True))
    return keys


def json_value(value: Any) -> list[Any]:
    """An aggregate's result as a list: PostgreSQL gives NULL for no rows, SQLite ``[]``."""
    if value is None:
        return []
    if isinstance(value, str):  # a driver that hands JSON back as text
        value = json.loads(value)
    return list(value)


def upsert_user_access(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or overwrite ``user_access`` rows (keys: user_pk, org_id, role_pk,
    access_group_pks)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    for start in range(0, len(rows), UPSERT_BATCH):
        batch = list(rows[start : start + UPSERT_BATCH])
        statement: Any
        if dialect == "postgresql":
            statement = postgresql.insert(UserAccess).values(batch)
        else:
            statement = sqlite.insert(UserAccess).values(batch)
        statement = statement.on_conflict_do_update(
            index_elements=[UserAccess.user_pk],
            set_={
                "role_pk": statement.excluded.role_pk,
                "access_group_pks": statement.excluded.access_group_pks,
            },
        )
        session.execute(statement)
