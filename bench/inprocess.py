"""CPU per request in-process, through the Flask test client: for profiles and A/B comparisons.

The load benchmark (``bench/load.py``) measures the server as operators run it, but its figures
move by a third between runs on a shared machine. This one runs one kind of request in one
process on a fresh SQLite file and reports the process's CPU time per request (the minimum of
several passes), which moves by a few percent; run it against two checkouts, alternating, to
compare them::

    .venv/bin/python bench/inprocess.py get                        # this checkout
    PYTHONPATH=/path/to/other/worktree .venv/bin/python bench/inprocess.py get
    .venv/bin/python bench/inprocess.py page --profile             # where the time goes
    .venv/bin/python bench/inprocess.py get --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

Kinds: get, filter (``userName eq``, a hit), miss, page (``startIndex`` of the last 100),
cursor (the second cursor page of 100), group-excl (GET group ``excludedAttributes=members``,
500 members), patch (``active``: each visit to a user flips it; before 2026-11-26 a user got the
same value on every pass, so the later passes measured PATCHes that changed nothing), put,
create. ``--profile`` prints a cProfile
of one pass by CPU time (``--sort cumulative`` or ``tottime``). ``--postgres URL`` runs on a
throw-away PostgreSQL database next to URL's instead, and reports the local PostgreSQL
processes' CPU per request beside the process's.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support import database_cpu_seconds, gather_statistics, postgres_database

from scim_server.app import create_app
from scim_server.config import Settings
from scim_server.services import tokens
from scim_server.services.deprovisioning import parse_limit
from scim_server.store.db import Database
from scim_server.store.migrate import upgrade

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM = "application/scim+json"
KINDS = ("get", "filter", "miss", "page", "cursor", "group-excl", "patch", "put", "create")


def _user(n: int, family: str = "B") -> dict[str, Any]:
    return {
        "schemas": [USER],
        "userName": f"u{n}@example.com",
        "name": {"givenName": "A", "familyName": f"{family}{n}"},
        "emails": [{"value": f"u{n}@example.com", "type": "work", "primary": True}],
        "active": True,
        "displayName": f"User {n}",
    }


def build(
    users: int, guard: str = "off", url: str | None = None
) -> tuple[Any, dict[str, str], list[str], str, str]:
    """A fresh database with one organisation, ``users`` users and a group of up to 500;
    ``guard``: its mass-deprovisioning limit (``off``, or e.g. ``1000000`` to count without
    ever holding); ``url``: an empty database to use instead of a new SQLite file."""
    url = url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'scim.db'}"
    database = Database(url)
    upgrade(database.engine)
    app = create_app(Settings(database_url=url), database=database)
    with database.transaction(write=True) as session:
        org = tokens.create_organization(session, "bench", "Bench")
        org.deprovision_limit, org.deprovision_limit_is_percent = parse_limit(guard)
        _, token = tokens.create_connection(session, org, "bench", "generic")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    ids = []
    for n in range(users):
        response = client.post("/scim/v2/Users", json=_user(n), headers=headers, content_type=SCIM)
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["id"])
    members = [{"value": user_id} for user_id in ids[:500]]
    group = client.post(
        "/scim/v2/Groups",
        json={"schemas": [GROUP], "displayName": "G", "members": members},
        headers=headers,
        content_type=SCIM,
    ).get_json()["id"]
    first = client.get("/scim/v2/Users?cursor=&count=100", headers=headers).get_json()
    return client, headers, ids, group, first.get("nextCursor", "")


def request_of(
    kind: str, users: int, guard: str = "off", url: str | None = None
) -> Callable[[int], None]:
    client, headers, ids, group, cursor = build(users, guard, url)

    def send(i: int) -> None:
        n = i % users
        user = f"/scim/v2/Users/{ids[n]}"
        if kind == "get":
            response = client.get(user, headers=headers)
        elif kind == "filter":
            response = client.get(
                f'/scim/v2/Users?filter=userName eq "u{n}@example.com"', headers=headers
            )
        elif kind == "miss":
            response = client.get(
                f'/scim/v2/Users?filter=userName eq "nobody{n}@example.com"', headers=headers
            )
        elif kind == "page":
            response = client.get(
                f"/scim/v2/Users?startIndex={users - 99}&count=100", headers=headers
            )
        elif kind == "cursor":
            response = client.get(f"/scim/v2/Users?cursor={cursor}&count=100", headers=headers)
        elif kind == "group-excl":
            response = client.get(
                f"/scim/v2/Groups/{group}?excludedAttributes=members", headers=headers
            )
        elif kind == "patch":
            body = {
                "schemas": [PATCH_OP],
                # each visit to a user flips it: every request changes something
                "Operations": [{"op": "replace", "path": "active", "value": i // users % 2 == 1}],
            }
            response = client.patch(user, json=body, headers=headers, content_type=SCIM)
        elif kind == "put":
            response = client.put(
                user, json=_user(n, family=f"C{i}"), headers=headers, content_type=SCIM
            )
        else:
            body = {**_user(0), "userName": f"n{uuid.uuid4().hex}@example.com"}
            response = client.post("/scim/v2/Users", json=body, headers=headers, content_type=SCIM)
        assert response.status_code < 300, response.get_data(as_text=True)

    return send


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--requests", type=int, help="per pass (default by kind)")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one pass by CPU time")
    parser.add_argument("--dump", help="with --profile: also write the raw profile to this file")
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument(
        "--deprovision-limit",
        default="off",
        help="the organisation's guard; a number too large to reach counts every deactivation "
        "(patch) without holding any (default: off)",
    )
    parser.add_argument("--postgres", metavar="URL", help="run on PostgreSQL (admin URL)")
    args = parser.parse_args()
    if args.postgres:
        with postgres_database(args.postgres, "scim_inprocess") as url:
            measure(args, url)
    else:
        measure(args, None)


def measure(args: argparse.Namespace, url: str | None) -> None:
    """Warm up, then profile one pass or time ``--passes`` of them."""
    default = {"page": 150, "cursor": 150, "patch": 800, "put": 800, "create": 800}
    count = args.requests or default.get(args.kind, 1500)
    send = request_of(args.kind, args.users, args.deprovision_limit, url)
    if url:  # statistics, as autovacuum gathers them within a minute of a load (load.py)
        gather_statistics(url)
    for i in range(50):  # warm-up: compiled statements, caches
        send(i)
    if args.profile:
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        for i in range(count):
            send(50 + i)
        profile.disable()
        pstats.Stats(profile).sort_stats(args.sort).print_stats(40)
        if args.dump:
            profile.dump_stats(args.dump)
        return
    best, best_database = float("inf"), float("inf")
    for run in range(args.passes):
        started, database_started = time.process_time(), database_cpu_seconds()
        for i in range(count):
            send(50 + run * count + i)  # on from the warm-up: no pass repeats the one before
        best = min(best, (time.process_time() - started) / count * 1000)
        best_database = min(
            best_database, (database_cpu_seconds() - database_started) / count * 1000
        )
    line = f"{args.kind}: {best:.3f} ms CPU per request"
    if url:
        line += f", PostgreSQL {best_database:.3f} ms"
    print(f"{line} (min of {args.passes} passes of {count})")


if __name__ == "__main__":
    main()
