"""``lastSignInAt`` and ``lastActivityAt`` of the access extension (DESIGN §5.1): the product
records them in the user's row (``users.last_sign_in_at``, ``users.last_activity_at``, as it
sets ``status = 'locked'``), and SCIM shows them read-only, so an IdP or an admin sees who still
uses the product. An IdP cannot write them, and its writes do not erase them."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from sqlalchemy import text

from scim_server.store.db import Database
from tests.api.audit_support import run_cli
from tests.conftest import USER_SCHEMA, Api, patch_body

ACCESS = "urn:ietf:params:scim:schemas:extension:access:2.0:User"
SIGNED_IN = datetime(2026, 11, 20, 8, 30, 15, 123456, tzinfo=UTC)
ACTIVE_AT = datetime(2026, 11, 26, 17, 5, 0, tzinfo=UTC)


def _product_records(
    database: Database, user_id: str, signed_in: datetime, active: datetime
) -> None:
    """What the product does at a sign-in and on activity: its own UPDATE of the user's row."""
    with database.engine.begin() as connection:
        connection.execute(
            text("UPDATE users SET last_sign_in_at = :s, last_activity_at = :a WHERE id = :i"),
            {"s": signed_in.replace(tzinfo=None), "a": active.replace(tzinfo=None), "i": user_id},
        )


def test_the_product_s_sign_in_times_are_shown_read_only(api: Api, database: Database) -> None:
    user = api.create_user("reader@acme.com")
    assert "lastSignInAt" not in user.get(ACCESS, {})
    before = api.get(f"/Users/{user['id']}")
    _product_records(database, user["id"], SIGNED_IN, ACTIVE_AT)

    read = api.get(f"/Users/{user['id']}")
    extension = read.get_json()[ACCESS]
    assert extension["lastSignInAt"] == "2026-11-20T08:30:15.123456Z"
    assert extension["lastActivityAt"] == "2026-11-26T17:05:00.000000Z"
    # the product's activity does not spoil an IdP's If-Match (weak ETag: not its state)
    assert read.headers["ETag"] == before.headers["ETag"]
    [listed] = api.list_users(filter='userName eq "reader@acme.com"')["Resources"]
    assert listed[ACCESS]["lastSignInAt"] == extension["lastSignInAt"]
    only = api.get(
        f"/Users/{user['id']}", query_string={"attributes": f"{ACCESS}:lastActivityAt"}
    ).get_json()
    assert only[ACCESS] == {"lastActivityAt": "2026-11-26T17:05:00.000000Z"}

    # an IdP's writes neither set nor erase them (readOnly: ignored on input)
    put = {
        "schemas": [USER_SCHEMA, ACCESS],
        "userName": "reader@acme.com",
        "displayName": "Reader",
        ACCESS: {"lastSignInAt": "2020-01-01T00:00:00Z", "lastActivityAt": None},
    }
    assert api.put(f"/Users/{user['id']}", put).status_code == 200
    patch = patch_body({"op": "replace", "path": "displayName", "value": "R."})
    patched = api.patch(f"/Users/{user['id']}", patch)
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()[ACCESS]["lastSignInAt"] == "2026-11-20T08:30:15.123456Z"
    assert patched.get_json()[ACCESS]["lastActivityAt"] == "2026-11-26T17:05:00.000000Z"


def test_users_export_carries_them(api: Api, database: Database) -> None:
    user = api.create_user("exported@acme.com")
    _product_records(database, user["id"], SIGNED_IN, ACTIVE_AT)
    result = run_cli(database, "users", "export", "--org", api.tenant.slug)
    assert result.exit_code == 0, result.output
    [row] = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["lastSignInAt"] == "2026-11-20T08:30:15.123456Z"
    assert row["lastActivityAt"] == "2026-11-26T17:05:00.000000Z"
