"""``scim-server users export`` and ``users import`` (DESIGN §8): the organisation's users as CSV,
columns from the schema documents, and back through the SCIM use cases: every rule applies, a
file is applied entirely or not at all, each change is its own event and the run one more."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from scim_server.scim.columns import user_columns
from scim_server.scim.schema import default_registry
from scim_server.store.db import Database
from tests.api.audit_support import Auditor, auditor_for, run_cli
from tests.api.test_lifecycle import cli, configure
from tests.conftest import Api, store_snapshot

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ACCESS = "urn:ietf:params:scim:schemas:extension:access:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.fixture
def auditor(app: Flask, database: Database, api: Api) -> Auditor:
    return auditor_for(app, database, api.tenant.slug)


def exported(database: Database, slug: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(cli(database, "users", "export", "--org", slug))))


def write(tmp_path: Path, rows: list[dict[str, str]], name: str = "users.csv") -> str:
    path = tmp_path / name
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def imported(database: Database, slug: str, path: str, *options: str) -> dict[str, Any]:
    result = run_cli(database, "users", "import", "--org", slug, path, "--json", *options)
    report: dict[str, Any] = json.loads(result.stdout.splitlines()[0])
    assert result.exit_code == (1 if report["errors"] else 0), result.output
    return report


def test_export_has_a_column_per_attribute_of_the_schemas(api: Api, database: Database) -> None:
    alice = api.create_user(
        "alice@acme.com",
        name={"givenName": "Alice", "familyName": "Smith, Jr."},
        emails=[
            {"value": "a.smith@acme.com", "type": "home"},
            {"value": "alice@acme.com", "type": "work", "primary": True},
        ],
        schemas=["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        **{ENTERPRISE: {"department": "Sales", "manager": {"value": "m-1"}}},
    )
    group = api.post("/Groups", {"schemas": [GROUP], "displayName": "Sales team"})
    api.patch(
        f"/Groups/{group.get_json()['id']}",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": alice["id"]}]}],
        },
    )
    text = cli(database, "users", "export", "--org", api.tenant.slug)
    header = next(csv.reader(io.StringIO(text)))
    assert header == [
        column.header for column in user_columns(default_registry().resource_type("User"))
    ]
    assert header[:3] == ["id", "externalId", "userName"]
    assert {"name.givenName", "emails", "roles", "department", "manager.value", "status"} <= set(
        header
    )
    assert not {"password", "addresses"} & set(header)  # never returned; no single value
    (row,) = exported(database, api.tenant.slug)
    assert (row["id"], row["userName"], row["name.familyName"]) == (
        alice["id"],
        "alice@acme.com",
        "Smith, Jr.",
    )
    assert row["emails"] == "alice@acme.com;a.smith@acme.com"  # the primary first
    assert (row["department"], row["manager.value"], row["groups"]) == (
        "Sales",
        "m-1",
        "Sales team",
    )
    assert (row["active"], row["status"], row["title"]) == ("true", "invited", "")


def test_an_export_imported_back_changes_nothing(
    api: Api, auditor: Auditor, database: Database, tmp_path: Path
) -> None:
    api.create_user(
        "a@acme.com",
        emails=[{"value": "a@acme.com", "type": "work", "primary": True}],
        roles=[{"value": "Viewer"}],
    )
    api.create_user("b@acme.com", title="Engineer", active=False)
    path = tmp_path / "export.csv"
    cli(database, "users", "export", "--org", api.tenant.slug, "--output", str(path))
    before = store_snapshot(database, api.tenant.org_id)
    report = imported(database, api.tenant.slug, str(path))
    assert (report["rows"], report["unchanged"], report["updated"], report["created"]) == (
        2,
        2,
        0,
        0,
    )
    assert store_snapshot(database, api.tenant.org_id) == before
    (export,) = auditor.events('operation eq "users.export"')
    assert (export["actorType"], export["changes"]["exported"]) == ("cli", 2)
    (run,) = auditor.events('operation eq "users.import"')
    assert run["changes"]["unchanged"] == 2
    assert auditor.events('operation eq "user.replace"') == []


def test_import_creates_and_updates_through_the_scim_rules(
    api: Api, auditor: Auditor, database: Database, tmp_path: Path
) -> None:
    alice = api.create_user(
        "alice@acme.com",
        title="Engineer",
        emails=[
            {"value": "alice@acme.com", "type": "work", "primary": True},
            {"value": "alice@home.example", "type": "home"},
        ],
    )
    path = write(
        tmp_path,
        [
            {
                "userName": "ALICE@acme.com",  # matched in any case
                "title": "",  # an empty cell removes the attribute
                "emails": "alice@home.example;alice@acme.com",  # another primary, types kept
                "active": "",  # stays as it is
                "department": "Sales",
            },
            {
                "userName": "bob@acme.com",
                "title": "Lead",
                "emails": "bob@acme.com",
                "active": "false",
                "department": "",
            },
        ],
    )
    report = imported(database, api.tenant.slug, path)
    assert (report["created"], report["updated"], report["applied"]) == (1, 1, True)
    shown = api.get(f"/Users/{alice['id']}").get_json()
    assert "title" not in shown
    assert shown["active"] is True
    assert shown["emails"] == [
        {"value": "alice@home.example", "type": "home", "primary": True},
        {"value": "alice@acme.com", "type": "work"},
    ]
    assert shown[ENTERPRISE] == {"department": "Sales"}
    bob = api.list_users(filter='userName eq "bob@acme.com"')["Resources"][0]
    assert (bob["title"], bob["active"], bob[ACCESS]["status"]) == ("Lead", False, "deactivated")
    (created,) = auditor.events('operation eq "user.create"')[1:]
    assert (created["actorType"], created["userName"], created["status"]) == (
        "cli",
        "bob@acme.com",
        201,
    )
    (replaced,) = auditor.events('operation eq "user.replace"')
    assert replaced["resourceId"] == alice["id"]
    assert replaced["changes"]["title"] == ["Engineer", None]
    (run,) = auditor.events('operation eq "users.import"')
    assert (run["status"], run["changes"]["created"], run["changes"]["updated"]) == (200, 1, 1)


def test_a_refused_row_refuses_the_whole_file(
    api: Api, auditor: Auditor, database: Database, tmp_path: Path
) -> None:
    configure(database, api.tenant.slug, "--allowed-domains", "acme.com")
    api.create_user("kept@acme.com", title="Same")
    before = store_snapshot(database, api.tenant.org_id)
    path = write(
        tmp_path,
        [
            {"userName": "kept@acme.com", "title": "Changed", "active": "true"},
            {"userName": "eve@gmail.com", "title": "", "active": "true"},
            {"userName": "new@acme.com", "title": "", "active": "maybe"},
        ],
    )
    result = run_cli(database, "users", "import", "--org", api.tenant.slug, path)
    assert result.exit_code == 1
    assert "3 rows: 0 users would have been created, 1 updated" in result.stdout
    assert (
        f'line 3 (eve@gmail.com): email domain "gmail.com" is not allowed for organisation '
        f'"{api.tenant.slug}"' in result.stderr
    )
    assert "line 4 (new@acme.com): column \"active\": 'maybe' is not true or false" in result.stderr
    assert "2 rows refused: nothing was written" in result.stderr
    assert store_snapshot(database, api.tenant.org_id) == before
    (run,) = auditor.events('operation eq "users.import"')
    assert (run["outcome"], run["status"], run["detail"]) == (
        "refused",
        400,
        "2 rows refused: nothing was written",
    )
    assert auditor.events('operation eq "user.replace"') == []


def test_a_dry_run_reports_and_writes_nothing(
    api: Api, auditor: Auditor, database: Database, tmp_path: Path
) -> None:
    api.create_user("old@acme.com")
    before = store_snapshot(database, api.tenant.org_id)
    path = write(tmp_path, [{"userName": "new@acme.com", "title": "T"}])
    report = imported(database, api.tenant.slug, path, "--dry-run", "--deactivate-missing")
    assert (report["created"], report["deactivated"], report["applied"]) == (1, 1, False)
    assert report["users"]["deactivated"][0]["userName"] == "old@acme.com"
    assert store_snapshot(database, api.tenant.org_id) == before
    (run,) = auditor.events('operation eq "users.import"')
    assert (run["changes"]["dryRun"], run["detail"]) == (True, "dry run: nothing was written")


def test_deactivate_missing_and_match_by_id(
    api: Api, auditor: Auditor, database: Database, tmp_path: Path
) -> None:
    renamed = api.create_user("before@acme.com")
    gone = api.create_user("gone@acme.com")
    already = api.create_user("already@acme.com", active=False)
    path = write(tmp_path, [{"id": renamed["id"], "userName": "after@acme.com"}])
    report = imported(database, api.tenant.slug, path, "--deactivate-missing")
    assert report["updated"] == 1
    assert [user["userName"] for user in report["users"]["deactivated"]] == ["gone@acme.com"]
    assert api.get(f"/Users/{renamed['id']}").get_json()["userName"] == "after@acme.com"
    assert api.get(f"/Users/{gone['id']}").get_json()["active"] is False
    assert api.get(f"/Users/{already['id']}").get_json()["active"] is False
    assert len(auditor.events('operation eq "user.replace"')) == 2


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"userName": "a@acme.com", "shoeSize": "42"}], "unknown column 'shoeSize'; the columns"),
        ([{"title": "T"}], 'the header needs a "userName" column (or "id")'),
    ],
)
def test_a_file_that_is_not_an_import_is_refused(
    api: Api, database: Database, tmp_path: Path, rows: list[dict[str, str]], message: str
) -> None:
    result = run_cli(database, "users", "import", "--org", api.tenant.slug, write(tmp_path, rows))
    assert result.exit_code == 1
    assert message in result.output


def test_two_rows_for_one_user_are_refused(api: Api, database: Database, tmp_path: Path) -> None:
    api.create_user("twice@acme.com")
    path = write(
        tmp_path,
        [
            {"userName": "twice@acme.com", "title": "A"},
            {"userName": "TWICE@acme.com", "title": "B"},
        ],
    )
    report = imported(database, api.tenant.slug, path)
    assert report["errors"] == [
        {
            "line": 3,
            "userName": "TWICE@acme.com",
            "detail": 'user "twice@acme.com" is named by an earlier row too',
        }
    ]


def test_separators_spaces_and_formulas_survive_a_round_trip(
    api: Api, auditor: Auditor, database: Database, tmp_path: Path
) -> None:
    api.create_user(
        "odd@acme.com",
        title="  padded  ",
        nickName="=1+2",
        phoneNumbers=[
            {"value": "tel:+1-201-555-0123;ext=1234", "type": "work", "primary": True},
            {"value": "back\\slash"},
        ],
        entitlements=[{"value": "Sales; EMEA"}],
    )
    path = tmp_path / "export.csv"
    cli(database, "users", "export", "--org", api.tenant.slug, "--output", str(path))
    (row,) = list(csv.DictReader(path.open(encoding="utf-8")))
    assert row["nickName"] == "'=1+2"  # a spreadsheet shows it, does not run it
    assert row["phoneNumbers"] == "tel:+1-201-555-0123\\;ext=1234;back\\\\slash"
    before = store_snapshot(database, api.tenant.org_id)
    report = imported(database, api.tenant.slug, str(path))
    assert (report["unchanged"], report["updated"]) == (1, 0)
    assert store_snapshot(database, api.tenant.org_id) == before


def test_a_row_of_the_wrong_width_is_refused(
    api: Api, auditor: Auditor, database: Database, tmp_path: Path
) -> None:
    api.create_user("short@acme.com", emails=[{"value": "short@acme.com"}])
    path = tmp_path / "short.csv"
    path.write_text("userName,title,emails\nshort@acme.com,CTO\nlong@acme.com,a,b,c\n")
    before = store_snapshot(database, api.tenant.org_id)
    report = imported(database, api.tenant.slug, str(path))
    assert [(error["line"], error["detail"]) for error in report["errors"]] == [
        (2, "the row has 2 cells, the header 3"),
        (3, "the row has 4 cells, the header fewer"),
    ]
    assert store_snapshot(database, api.tenant.org_id) == before
    (run,) = auditor.events('operation eq "users.import"')
    assert [refused["line"] for refused in run["changes"]["refused"]] == [2, 3]


def test_a_file_that_is_not_utf_8_is_refused_with_its_event(
    api: Api, auditor: Auditor, database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("userName,displayName\nzoe@acme.com,Zoë\n".encode("cp1252"))
    result = run_cli(database, "users", "import", "--org", api.tenant.slug, str(path))
    assert result.exit_code == 1
    assert 'excel.csv is not UTF-8 text: save it as "CSV UTF-8" (Excel)' in result.output
    bad_header = write(tmp_path, [{"userName": "a@acme.com", "shoeSize": "42"}], "bad.csv")
    assert run_cli(database, "users", "import", "--org", api.tenant.slug, bad_header).exit_code == 1
    events = auditor.events('operation eq "users.import"')
    assert [(event["status"], event["changes"]["file"]) for event in events] == [
        (400, "excel.csv"),
        (400, "bad.csv"),
    ]
    assert api.list_users()["totalResults"] == 0
