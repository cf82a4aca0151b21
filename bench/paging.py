"""Benchmark (run by hand, not a test): page time at the start and at the end of 100,000 users,
index paging (``startIndex``) against cursor paging (RFC 9865 ``cursor``), DESIGN §4.2.

    .venv/bin/python bench/paging.py                 # SQLite, a fresh file in a temp folder
    .venv/bin/python bench/paging.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

``--postgres`` names a database to connect to; the script creates its own throw-away database
next to it and drops it afterwards.

Setup: ``scim-server init``, ``org create`` and ``connection create`` through the CLI. The users
are loaded through the store layer, not 100,000 HTTP POSTs (about 200/s, issue #7, would take
eight minutes per database): each document goes through ``store.users.apply_document`` (the
promoted columns a filter and a sort read, and the seat domain the policy gives it), the ORM
inserts them in batches, their ``emails`` index rows are written alongside, and
``services.access.recompute_access`` stores their effective access, as a SCIM create would. No
audit events are written for the seed. Then
``ANALYZE``, as autovacuum would after such a load.

Measurement, through the real HTTP surface of ``scim-server serve`` (gunicorn, production
settings) over one keep-alive connection, ``count=100``:

* index paging: ``startIndex=1`` and ``startIndex=N-99`` (the last page);
* cursor paging: the first page (empty cursor: it also counts ``totalResults``), the second page
  (the first page's ``nextCursor``: no count) and the last page (a cursor at position N-100,
  reached by walking the result with cursors: ``count=1000`` up to N-1000, then one page of 900 —
  a cursor is bound to the filter and the sort, not to ``count``);
* the same four with ``sortBy=userName``.

Every case is requested ``--repetitions`` times, the cases interleaved round-robin so that the
shared machine's noise falls on all of them alike; the table gives median and p95 of the client's
wall time per request. Then one full walk of every user with ``count=100`` cursor pages checks that
each user comes exactly once, and gives the median time of its first and last 10 pages.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import time
import urllib.parse
import uuid
from typing import Any

from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.orm import Session
from support import provision, scratch_database, serve

from scim_server.policy.domains import seat_domain
from scim_server.services.access import recompute_access
from scim_server.store.models import Organization, User, UserAttributeValue
from scim_server.store.types import utcnow
from scim_server.store.users import apply_document

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
BATCH = 5000


def _document(number: int) -> dict[str, Any]:
    # userName order differs from creation order, so sortBy=userName is a real sort
    scrambled = (number * 7919) % 1_000_003
    return {
        "schemas": [USER_SCHEMA],
        "userName": f"u{scrambled:07d}.{number}@bench.example",
        "name": {"givenName": f"Given{number}", "familyName": f"Family{number % 977}"},
        "displayName": f"Given{number} Family{number % 977}",
        "emails": [{"value": f"u{number}@bench.example", "type": "work", "primary": True}],
        "active": True,
    }


def seed(url: str, org_slug: str, users: int) -> float:
    """Load ``users`` users into the organisation through the store layer; seconds taken."""
    started = time.perf_counter()
    engine = create_engine(url)
    with Session(engine) as session:
        org_id = session.scalars(select(Organization.id).where(Organization.slug == org_slug)).one()
    for start in range(0, users, BATCH):
        with Session(engine) as session, session.begin():
            now = utcnow()
            batch: list[User] = []
            for number in range(start, min(users, start + BATCH)):
                user = User(
                    id=str(uuid.uuid4()),
                    org_id=org_id,
                    status="active",
                    activated_at=now,
                    created_at=now,
                    last_modified=now,
                )
                document = _document(number)
                apply_document(user, document, seat_domain(document))
                batch.append(user)
            session.add_all(batch)
            session.flush()  # one multi-row INSERT ... RETURNING per batch: the pks
            session.execute(
                insert(UserAttributeValue),
                [
                    {
                        "user_pk": user.pk,
                        "org_id": org_id,
                        "attribute": "emails",
                        "value": email["value"],
                        "type": email["type"],
                        "primary": True,
                        "display": None,
                        "data": email,
                    }
                    for user in batch
                    for email in user.data["emails"]
                ],
            )
            recompute_access(session, org_id, [user.pk for user in batch])
        print(f"  seeded {min(users, start + BATCH):>7} users", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    with engine.begin() as connection:
        # Fresh statistics, as autovacuum would gather within a minute of a bulk load: with the
        # empty table's, PostgreSQL estimates one user per organisation and walks the wrong
        # index (100 ms a page instead of 10 ms, whatever the paging method).
        connection.execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


class Client:
    """One keep-alive connection, as an IdP walking a directory keeps one."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=120)
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/scim+json"}

    def users(self, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        path = "/scim/v2/Users?" + urllib.parse.urlencode(params)
        began = time.perf_counter()
        self.connection.request("GET", path, headers=self.headers)
        response = self.connection.getresponse()
        raw = response.read()
        elapsed = time.perf_counter() - began
        if response.status != 200:
            raise SystemExit(f"GET {path} answered {response.status}: {raw[:500]!r}")
        body: dict[str, Any] = json.loads(raw)
        return elapsed, body


def _cursor_at(client: Client, sort: dict[str, str], position: int) -> str:
    """A cursor after ``position`` rows of the query, reached by walking it with cursors."""
    cursor, done = "", 0
    while done < position:
        step = min(1000, position - done)
        _, page = client.users({**sort, "count": step, "cursor": cursor})
        done += len(page["Resources"])
        cursor = page["nextCursor"]
    return cursor


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def measure(client: Client, users: int, repetitions: int) -> list[dict[str, Any]]:
    cases: list[tuple[str, str, dict[str, Any], int]] = []
    for label, sort in (("pk (default)", {}), ("sortBy=userName", {"sortBy": "userName"})):
        _, first = client.users({**sort, "count": 100, "cursor": ""})
        second_cursor = first["nextCursor"]
        end_cursor = _cursor_at(client, sort, users - 100)
        cases += [
            (label, "index, first page", {**sort, "count": 100, "startIndex": 1}, 100),
            (label, "index, last page", {**sort, "count": 100, "startIndex": users - 99}, 100),
            (label, "cursor, first page (+COUNT)", {**sort, "count": 100, "cursor": ""}, 100),
            (label, "cursor, second page", {**sort, "count": 100, "cursor": second_cursor}, 100),
            (label, "cursor, last page", {**sort, "count": 100, "cursor": end_cursor}, 100),
        ]
    timings: list[list[float]] = [[] for _ in cases]
    for _ in range(2):  # warm-up: connections, caches, prepared statements
        for _, _, params, _ in cases:
            client.users(params)
    for _ in range(repetitions):
        for index, (_, name, params, expected) in enumerate(cases):
            elapsed, page = client.users(params)
            assert len(page["Resources"]) == expected, (name, len(page["Resources"]))
            if name == "cursor, last page":
                assert "nextCursor" not in page
            timings[index].append(elapsed)
    return [
        {
            "order": label,
            "case": name,
            "median_ms": round(statistics.median(samples) * 1000, 1),
            "p95_ms": round(_p95(samples) * 1000, 1),
            "min_ms": round(min(samples) * 1000, 1),
        }
        for (label, name, _, _), samples in zip(cases, timings, strict=True)
    ]


def full_walk(client: Client, users: int) -> dict[str, Any]:
    seen: set[str] = set()
    times: list[float] = []
    cursor: str | None = ""
    began = time.perf_counter()
    while cursor is not None:
        elapsed, page = client.users({"count": 100, "cursor": cursor})
        times.append(elapsed)
        for resource in page["Resources"]:
            assert resource["id"] not in seen, "a user came twice"
            seen.add(resource["id"])
        cursor = page.get("nextCursor")
    assert len(seen) == users, f"walked {len(seen)} of {users} users"
    return {
        "pages": len(times),
        "seconds": round(time.perf_counter() - began, 1),
        "first_10_median_ms": round(statistics.median(times[:10]) * 1000, 1),
        "last_10_median_ms": round(statistics.median(times[-10:]) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL to create a scratch database in")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--repetitions", type=int, default=21)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    database = "postgresql" if args.postgres else "sqlite"

    with scratch_database(args.postgres, "bench_paging") as url:
        env = {**os.environ, "SCIM_DATABASE_URL": url}
        token = provision(env)
        seed_seconds = seed(url, "bench", args.users)
        with serve(env, args.workers) as base:
            address = urllib.parse.urlsplit(base)
            host, port = address.hostname or "127.0.0.1", address.port or 80
            client = Client(host, port, token)
            _, probe = client.users({"count": 1})
            assert probe["totalResults"] == args.users, probe["totalResults"]
            rows = measure(client, args.users, args.repetitions)
            walk = full_walk(client, args.users)

    print(f"database: {database}; users: {args.users}; workers: {args.workers}; ", end="")
    print(f"repetitions: {args.repetitions}; seeded in {seed_seconds:.0f} s")
    python = platform.python_version()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {python}")
    print(f"{'order':<16} {'case':<28} {'median ms':>10} {'p95 ms':>8} {'min ms':>8}")
    for row in rows:
        print(
            f"{row['order']:<16} {row['case']:<28} {row['median_ms']:>10} "
            f"{row['p95_ms']:>8} {row['min_ms']:>8}"
        )
    print(
        f"full cursor walk: {walk['pages']} pages in {walk['seconds']} s; median of first 10 "
        f"pages {walk['first_10_median_ms']} ms, of last 10 {walk['last_10_median_ms']} ms"
    )
    print(json.dumps({"database": database, "users": args.users, "cases": rows, "walk": walk}))


if __name__ == "__main__":
    main()
