"""The auditor API, ``/audit/v1/events`` (DESIGN §6, issue #3 item 5): SCIM filters over events,
stable cursor pages, streamed CSV and JSON Lines exports, and duties kept apart by token scope."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from datetime import datetime
from typing import Any

import pytest
from flask import Flask

from scim_server.services import tokens
from scim_server.store import filters
from scim_server.store.db import Database
from tests.api.audit_support import (
    ERROR,
    EVENT_FIELDS,
    Auditor,
    auditor_for,
    request_id,
)
from tests.conftest import USER_SCHEMA, Api, patch_body

CSV_HEADER = [
    "seq",
    "time",
    "actorType",
    "actor",
    "tokenPrefix",
    "requestId",
    "clientIp",
    "userAgent",
    "operation",
    "outcome",
    "status",
    "scimType",
    "detail",
    "resourceType",
    "resourceId",
    "userName",
    "prevHash",
    "hash",
    "changes",
    "orgId",  # last: added after the others, so positional readers are not moved
]


@pytest.fixture
def auditor(app: Flask, database: Database, api: Api) -> Auditor:
    return auditor_for(app, database, api.tenant.slug)


@pytest.fixture
def history(api: Api) -> dict[str, Any]:
    """A small provisioning history: creates, a patch, a refusal, two deletes."""
    smith = api.create_user("John.Smith@example.com", displayName="John")
    jane = api.create_user("jane@example.com")
    kim = api.create_user("kim@example.com")
    assert (
        api.patch(
            f"/Users/{smith['id']}",
            patch_body({"op": "replace", "path": "displayName", "value": "Johnny"}),
        ).status_code
        == 200
    )
    assert (
        api.post("/Users", {"schemas": [USER_SCHEMA], "userName": "JANE@example.com"}).status_code
        == 409
    )
    assert api.delete(f"/Users/{kim['id']}").status_code == 204
    assert api.delete(f"/Users/{smith['id']}").status_code == 204
    return {"smith": smith, "jane": jane, "kim": kim}


def _time(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00"))


def _seqs(events: list[dict[str, Any]]) -> list[int]:
    return [event["seq"] for event in events]


def test_filters_select_exactly_the_matching_events(
    auditor: Auditor, history: dict[str, Any]
) -> None:
    everything = [e for e in auditor.events() if e["operation"].startswith("user.")]
    assert len(everything) == 7

    # the issue's own example, checked against the same rule applied by hand
    since = "2026-01-01T00:00:00Z"
    found = auditor.events(f'operation eq "user.delete" and time gt "{since}"')
    assert _seqs(found) == _seqs(
        [
            e
            for e in everything
            if e["operation"] == "user.delete"
            and _time(e) > datetime.fromisoformat("2026-01-01T00:00:00+00:00")
        ]
    )
    deletes = [e for e in everything if e["operation"] == "user.delete"]
    assert len(deletes) == 2
    # a time bound that falls between the two deletes keeps only the later one
    later = auditor.events(f'operation eq "user.delete" and time gt "{deletes[0]["time"]}"')
    assert _seqs(later) == [deletes[1]["seq"]]
    assert later[0]["userName"] == "John.Smith@example.com"

    smith_id = history["smith"]["id"]
    about_smith = auditor.events(f'resourceId eq "{smith_id}"')
    assert [e["operation"] for e in about_smith] == ["user.create", "user.patch", "user.delete"]

    # userName is not case-exact: "smith" finds John.Smith
    smiths = auditor.events('userName co "smith"')
    assert _seqs(smiths) == _seqs(about_smith)

    refused = auditor.events('outcome eq "refused"')
    assert [(e["operation"], e["status"], e["scimType"]) for e in refused] == [
        ("user.create", 409, "uniqueness")
    ]
    assert refused[0]["userName"] == "JANE@example.com"


@pytest.mark.parametrize(
    "comparison",
    ["eq 200.6", "ne 200.6", "gt 200.6", "ge 200.6", "lt 201.5", "le 200.5", "gt 200", "eq 201"],
)
def test_numbers_compare_as_numbers_whatever_the_column_type(
    auditor: Auditor, history: Any, comparison: str
) -> None:
    """An integer attribute compared with a fraction is compared exactly, on both databases (a
    parameter typed as the column's integer made PostgreSQL round 200.6 to 201)."""
    operator, number = comparison.split()
    value = float(number) if "." in number else int(number)
    everything = [e for e in auditor.events() if e["operation"].startswith("user.")]
    compare = {
        "eq": lambda s: s == value,
        "ne": lambda s: s != value,
        "gt": lambda s: s > value,
        "ge": lambda s: s >= value,
        "lt": lambda s: s < value,
        "le": lambda s: s <= value,
    }[operator]
    expected = [e["seq"] for e in everything if compare(e["status"])]
    found = auditor.events(f'operation sw "user." and status {comparison}')
    assert _seqs(found) == expected
    assert expected or operator in {"eq", "le"}  # the history has statuses on both sides


def test_a_large_filter_is_answered_but_its_statement_is_not_kept(
    auditor: Auditor, database: Database, history: dict[str, Any]
) -> None:
    """An auditor's filter of many comparisons is compiled for its query alone (the statement
    of one held megabytes), for pages and exports alike; small ones are remembered in the
    filter shapes' own cache, not the engine's."""
    engine_cache = database.engine._compiled_cache
    assert engine_cache is not None
    shapes_cache = filters._COMPILED_SHAPES
    smith_id = history["smith"]["id"]
    absent = " or ".join(f'resourceId eq "absent-{n}"' for n in range(30))

    def large(attribute: str) -> str:
        return f'({attribute} co "user.delete" or {absent}) and resourceId eq "{smith_id}"'

    auditor.events(large("detail"))  # compiles what every query runs
    before = len(engine_cache), len(shapes_cache)
    for attribute in ("operation", "userAgent"):
        found = auditor.events(large(attribute))
        expected = ["user.delete"] if attribute == "operation" else []
        assert [e["operation"] for e in found] == expected
        exported = auditor.get(filter=large(attribute), format="jsonl")
        assert exported.status_code == 200
        assert len(exported.get_data(as_text=True).splitlines()) == len(expected)
        assert (len(engine_cache), len(shapes_cache)) == before, "a large filter was kept"
    shapes_cache.clear()
    auditor.events('operation eq "user.create" and userAgent pr')
    assert len(shapes_cache) == 1
    assert len(engine_cache) == before[0]


@pytest.mark.parametrize(
    ("text", "matches_user_events"),
    [
        ('operation sw "user."', True),
        ('operation sw "USER."', False),  # operation is caseExact
        ('operation ew "DELETE"', False),
        ('operation co "elet"', True),
        ('userName co "SMITH"', True),  # userName is not
    ],
)
def test_case_exact_attributes_compare_case_in_pages_and_exports(
    auditor: Auditor, history: Any, text: str, matches_user_events: bool
) -> None:
    found = auditor.events(text)
    assert bool(found) == matches_user_events
    assert all(e["operation"].startswith("user.") for e in found)
    exported = auditor.get(filter=text, format="jsonl")
    assert exported.status_code == 200
    assert [json.loads(line)["seq"] for line in exported.get_data(as_text=True).splitlines()] == [
        e["seq"] for e in found
    ]


def test_integers_past_the_column_or_bigint_compare_as_numbers(
    auditor: Auditor, history: Any
) -> None:
    """``status`` is an INTEGER column on PostgreSQL: a larger literal used to overflow its
    parameter (a 500) where it simply matches nothing; so did one past BIGINT, on both."""
    assert auditor.events(f"status eq {2**31}") == []
    everything = _seqs(auditor.events())
    assert _seqs(auditor.events(f"seq lt {2**62}"))[: len(everything)] == everything
    # past BIGINT (RFC 7643 sets integers no bound) a literal still compares as a number
    assert auditor.events(f"seq gt {2**63}") == []
    assert auditor.events(f"status lt -{2**64}") == []
    assert _seqs(auditor.events(f"seq lt {2**70}"))[: len(everything)] == everything
    assert _seqs(auditor.events(f"seq lt {10**400}"))[: len(everything)] == everything  # no float
    assert auditor.events(f"seq gt {10**400}") == []


def test_a_cursor_past_any_event_is_an_empty_page_and_past_bigint_is_refused(
    auditor: Auditor, history: Any
) -> None:
    far = base64.urlsafe_b64encode(f"seq:{2**31}".encode()).decode().rstrip("=")
    assert auditor.page(cursor=far)["Resources"] == []
    beyond = base64.urlsafe_b64encode(f"seq:{2**63}".encode()).decode().rstrip("=")
    response = auditor.get(cursor=beyond)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["scimType"] == "invalidValue"


def test_a_filter_matching_nothing_is_an_empty_page(auditor: Auditor, history: Any) -> None:
    body = auditor.page(filter='operation eq "group.create"')
    assert body["Resources"] == []
    assert body["itemsPerPage"] == 0
    assert "nextCursor" not in body


@pytest.mark.parametrize(
    "bad_filter",
    [
        "operation eq",
        'operation xx "user.delete"',
        'nosuch eq "x"',
        'changes eq "x"',
        'time gt "last tuesday"',
        '(operation eq "user.delete"',
    ],
)
@pytest.mark.parametrize("fmt", [None, "csv", "jsonl"])
def test_a_bad_filter_is_400_invalid_filter_for_pages_and_exports(
    auditor: Auditor, bad_filter: str, fmt: str | None
) -> None:
    params: dict[str, Any] = {"filter": bad_filter}
    if fmt:
        params["format"] = fmt
    response = auditor.get(**params)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/scim+json"
    body = response.get_json()
    assert body["schemas"] == [ERROR]
    assert body["scimType"] == "invalidFilter"
    # the refusal is itself in the log
    [event] = auditor.events('outcome eq "refused" and status eq 400')
    assert event["operation"] == ("audit.export" if fmt else "audit.query")
    assert event["scimType"] == "invalidFilter"


def test_a_refusal_names_the_attribute_type_with_its_article(auditor: Auditor) -> None:
    response = auditor.get(filter='status co "20"')
    assert response.status_code == 400
    assert "status is an integer" in response.get_json()["detail"]


def test_walking_all_pages_with_a_cursor_has_no_duplicates_or_gaps(
    auditor: Auditor, history: Any
) -> None:
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"count": 2}
    pages = 0
    while True:
        body = auditor.page(**params)
        pages += 1
        assert body["itemsPerPage"] == len(body["Resources"]) <= 2
        seen.extend(body["Resources"])
        if "nextCursor" not in body:
            break
        assert len(body["Resources"]) == 2
        params["cursor"] = body["nextCursor"]
        assert pages < 50
    seqs = _seqs(seen)
    # every event of the history once, in order; the walk's own page fetches (audit.query
    # events appended meanwhile) are after the log's end as it stood at the first page
    assert seqs == list(range(1, 8))
    assert not [e for e in seen if e["operation"] == "audit.query"]
    assert all(set(e) == EVENT_FIELDS for e in seen)
    later = auditor.events(filter="seq gt 7")
    assert later
    assert {e["operation"] for e in later} == {"audit.query"}


def test_pages_already_defined_do_not_shift_when_events_are_appended(
    api: Api, auditor: Auditor, history: Any
) -> None:
    for filter_text in (None, 'operation eq "user.create" or operation eq "user.delete"'):
        params: dict[str, Any] = {"count": 2}
        if filter_text:
            params["filter"] = filter_text
        first = auditor.page(**params)
        cursor = first["nextCursor"]
        second = auditor.page(**params, cursor=cursor)
        for n in range(3):  # new events, including new matches for the filter, arrive meanwhile
            api.create_user(f"late-{n}-{request_id()}@example.com")
        again = auditor.page(**params, cursor=cursor)
        assert again["Resources"] == second["Resources"]
        assert again["nextCursor"] == second["nextCursor"]
        assert _seqs(second["Resources"])[0] > _seqs(first["Resources"])[-1]
        assert auditor.page(**params)["Resources"] == first["Resources"]


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "!!!",
        base64.urlsafe_b64encode(b"seq:abc").decode(),
        base64.urlsafe_b64encode(b"pk:3").decode(),
        base64.urlsafe_b64encode(b"seq:-1").decode(),
    ],
)
def test_an_invalid_cursor_is_400(auditor: Auditor, cursor: str) -> None:
    response = auditor.get(cursor=cursor)
    assert response.status_code == 400
    body = response.get_json()
    assert body["schemas"] == [ERROR]
    assert body["scimType"] == "invalidValue"
    assert "cursor" in body["detail"]


@pytest.mark.parametrize("count", ["0", "-1", "ten", "100000", "\u0663", "1_0", "9" * 30])
def test_a_bad_count_is_400(auditor: Auditor, count: str) -> None:
    response = auditor.get(count=count)
    assert response.status_code == 400
    assert response.get_json()["scimType"] == "invalidValue"


def test_csv_export_has_a_header_and_one_row_per_matching_event(
    api: Api, auditor: Auditor, history: dict[str, Any]
) -> None:
    wanted = 'operation eq "user.create" or operation eq "user.patch"'
    expected = auditor.events(wanted)
    assert len(expected) == 5  # three creates, the refused create, the patch
    response = auditor.get(format="csv", filter=wanted)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="audit-{api.tenant.slug}.csv"'
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == CSV_HEADER
    assert len(rows) == 1 + len(expected)
    for row, event in zip(rows[1:], expected, strict=True):
        record = dict(zip(CSV_HEADER, row, strict=True))
        for name in CSV_HEADER:
            value = event[name]
            if name == "changes":
                assert (json.loads(record[name]) if record[name] else None) == value
            else:
                assert record[name] == ("" if value is None else str(value)), name
    patch_row = dict(zip(CSV_HEADER, rows[4], strict=True))
    assert json.loads(patch_row["changes"]) == {"displayName": ["John", "Johnny"]}


def test_the_csv_export_defuses_cells_a_spreadsheet_would_run(api: Api, auditor: Auditor) -> None:
    """Events quote what clients sent; a crafted User-Agent or request id must not run as a
    formula on the auditor's machine (as in the users' CSV). JSON Lines keeps them exact."""
    sent = {"userAgent": "=cmd|' /C calc'!A0", "requestId": "@SUM(1+1)"}
    headers = {"User-Agent": sent["userAgent"], "X-Request-Id": sent["requestId"]}
    assert api.get("/Users", headers=headers).status_code == 200
    wanted = 'operation eq "user.list"'
    text = auditor.get(format="csv", filter=wanted).get_data(as_text=True)
    last_row = list(csv.reader(io.StringIO(text)))[-1]
    record = dict(zip(CSV_HEADER, last_row, strict=True))
    lines = auditor.get(format="jsonl", filter=wanted).get_data(as_text=True).splitlines()
    exact = json.loads(lines[-1])
    for name, value in sent.items():
        assert exact[name] == value
        assert record[name] == "'" + value


def test_jsonl_export_is_one_event_object_per_line(
    auditor: Auditor, history: dict[str, Any]
) -> None:
    wanted = 'operation eq "user.delete"'
    expected = auditor.events(wanted)
    response = auditor.get(format="jsonl", filter=wanted)
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    text = response.get_data(as_text=True)
    assert text.endswith("\n")
    lines = text.splitlines()
    assert [json.loads(line) for line in lines] == expected
    assert {event["userName"] for event in expected} == {
        "kim@example.com",
        "John.Smith@example.com",
    }


def test_an_export_with_no_filter_holds_every_event(auditor: Auditor, history: Any) -> None:
    before = auditor.events()
    lines = auditor.get(format="jsonl").get_data(as_text=True).splitlines()
    # the export holds every event up to and including the listing that preceded it
    assert [json.loads(line) for line in lines][: len(before)] == before
    assert _seqs([json.loads(line) for line in lines]) == list(range(1, len(lines) + 1))


def test_an_unknown_export_format_is_400(auditor: Auditor) -> None:
    response = auditor.get(format="xml")
    assert response.status_code == 400
    assert response.get_json()["scimType"] == "invalidValue"


def test_audit_queries_and_exports_are_themselves_events(
    auditor: Auditor, history: Any, api: Api
) -> None:
    query_rid = request_id("query")
    export_rid = request_id("export")
    auditor.get(filter='outcome eq "refused"', headers={"X-Request-Id": query_rid})
    auditor.get(format="csv", filter='userName co "smith"', headers={"X-Request-Id": export_rid})
    query = auditor.one(query_rid)
    export = auditor.one(export_rid)
    prefix = tokens.token_prefix(auditor.token)
    assert (query["operation"], query["outcome"], query["status"]) == (
        "audit.query",
        "success",
        200,
    )
    assert query["detail"] == 'filter: outcome eq "refused"'
    assert (export["operation"], export["outcome"], export["status"]) == (
        "audit.export",
        "success",
        200,
    )
    assert export["detail"] == 'filter: userName co "smith"'
    for event in (query, export):
        assert (event["actorType"], event["actor"], event["tokenPrefix"]) == (
            "audit",
            prefix,
            prefix,
        )
        assert event["changes"] is None


def test_a_scim_or_admin_token_cannot_read_the_log(
    app: Flask, database: Database, api: Api, auditor: Auditor
) -> None:
    with database.transaction(write=True) as session:
        org = tokens.get_organization(session, api.tenant.slug)
        admin_token = tokens.issue_token(session, org, "admin")
    client = app.test_client()
    rids = []
    for token in (api.tenant.token, admin_token):
        rids.append(request_id("wrong-scope"))
        response = client.get(
            "/audit/v1/events",
            headers={"Authorization": f"Bearer {token}", "X-Request-Id": rids[-1]},
        )
        assert response.status_code == 403
        assert response.get_json()["schemas"] == [ERROR]
    scim_event, admin_event = (auditor.one(rid) for rid in rids)
    for event in (scim_event, admin_event):
        assert (event["operation"], event["outcome"], event["status"]) == (
            "audit.query",
            "refused",
            403,
        )
    assert (scim_event["actorType"], scim_event["actor"]) == (
        "connection",
        api.tenant.connection_id,
    )
    assert (admin_event["actorType"], admin_event["actor"]) == (
        "admin",
        tokens.token_prefix(admin_token),
    )


def test_an_audit_token_cannot_provision(app: Flask, auditor: Auditor) -> None:
    rid = request_id("auditor-provisions")
    response = app.test_client().post(
        "/scim/v2/Users",
        json={"schemas": [USER_SCHEMA], "userName": "sneaky@example.com"},
        headers={"Authorization": f"Bearer {auditor.token}", "X-Request-Id": rid},
        content_type="application/scim+json",
    )
    assert response.status_code == 403
    event = auditor.one(rid)
    assert (event["operation"], event["outcome"], event["status"]) == (
        "user.create",
        "refused",
        403,
    )
    assert (event["actorType"], event["actor"]) == ("audit", tokens.token_prefix(auditor.token))
    assert event["changes"] is None
    assert auditor.events('operation eq "user.create" and outcome eq "success"') == []


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def test_an_export_verifies_offline_with_the_documented_recipe(
    auditor: Auditor, api: Api, history: dict[str, Any]
) -> None:
    """An auditor can check an export away from the server (README, "Checking an export
    offline"): each event's hash is SHA-256 of the canonical JSON of its fields other than
    ``hash``, names in snake_case; each ``prevHash`` is the hash before it. Written here from
    the README, not from the server's code, so a change of either shows."""
    response = auditor.get(format="jsonl")
    assert response.status_code == 200
    events = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert len(events) >= 7
    assert {event["orgId"] for event in events} == {api.tenant.org_id}
    previous = "0" * 64
    for event in events:
        fields = {_snake(name): value for name, value in event.items() if name != "hash"}
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(canonical.encode()).hexdigest() == event["hash"], event["seq"]
        assert event["prevHash"] == previous
        previous = event["hash"]
    # and an edited export does not verify
    forged = dict(events[2], userName="mallory@example.com")
    fields = {_snake(name): value for name, value in forged.items() if name != "hash"}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode()).hexdigest() != forged["hash"]


def test_a_walk_ends_at_the_log_as_it_was_when_it_began(
    api: Api, auditor: Auditor, history: dict[str, Any]
) -> None:
    """Every page of a walk is itself an event in the log it reads (audit.query), and writes go
    on meanwhile: a walk returns the events up to where the log stood at its first page, so it
    ends, even one event per page; later events are the next walk's."""
    size = len(auditor.events())  # this listing's own events come after it
    seen: list[int] = []
    params: dict[str, Any] = {"count": 1}
    for _ in range(3 * size):
        page = auditor.page(**params)
        seen += _seqs(page["Resources"])
        api.create_user(f"meanwhile-{len(seen)}-{request_id()}@example.com")
        if "nextCursor" not in page:
            break
        params["cursor"] = page["nextCursor"]
    else:
        pytest.fail(f"the walk did not end: {len(seen)} pages for a log of about {size} events")
    first = seen[0]
    assert seen == list(range(first, seen[-1] + 1))
    assert len(seen) >= size
    assert seen[-1] < first + 2 * size  # not the events of the walk itself
    # a cursor issued before walks had an end ("seq:N") gets one at its next page
    logged = _seqs(auditor.events())[-1]  # the log's end now (this listing: one event more)
    legacy = base64.urlsafe_b64encode(b"seq:0").decode().rstrip("=")
    page = auditor.page(count=1, cursor=legacy)
    pages = 1
    while "nextCursor" in page:
        page = auditor.page(count=1, cursor=page["nextCursor"])
        pages += 1
        assert pages <= logged + 2, "the walk from a legacy cursor did not end"
    assert _seqs(page["Resources"])[-1] <= logged + 1
