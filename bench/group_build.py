"""Build a 10,000-member group through HTTP in batches of 100; time each batch (issue #4).

Membership PATCHes must cost in proportion to the members they add, not to the group's size:
the last batch (group at 9,900 members) should take no more than 1.5x the first (empty group).

    python bench/group_build.py                       # SQLite, a fresh file in a temp folder
    python bench/group_build.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

It starts the server as a user would (``scim-server serve``: gunicorn, production settings),
creates the users with concurrent POSTs, then sends the 100 membership PATCHes one after another
(Okta pushes a group's members sequentially) and prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from support import provision, scratch_database, send, serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL to create a scratch database in")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.members < 5 * args.batch:
        parser.error(
            "--members must be at least 5 batches: the figures compare the first five and last five"
        )

    with scratch_database(args.postgres, "bench_groups") as url:
        env = {**os.environ, "SCIM_DATABASE_URL": url}
        token = provision(env)
        with serve(env, args.workers) as base:
            scim = f"{base}/scim/v2"

            def create(i: int) -> str:
                status, body = send(
                    "POST",
                    f"{scim}/Users",
                    token,
                    {
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": f"member{i}@bench.example",
                        "displayName": f"Member {i}",
                    },
                )
                assert status == 201, body
                return str(json.loads(body)["id"])

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=8) as pool:
                user_ids = list(pool.map(create, range(args.members)))
            setup_seconds = time.perf_counter() - started

            status, body = send(
                "POST",
                f"{scim}/Groups",
                token,
                {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Department of Benchmarks",
                },
            )
            assert status == 201, body
            group_id = json.loads(body)["id"]

            timings: list[float] = []
            for start in range(0, args.members, args.batch):
                members = [{"value": uid} for uid in user_ids[start : start + args.batch]]
                patch = {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "add", "path": "members", "value": members}],
                }
                began = time.perf_counter()
                status, body = send("PATCH", f"{scim}/Groups/{group_id}", token, patch)
                timings.append(time.perf_counter() - began)
                assert status in (200, 204), body

            status, body = send("GET", f"{scim}/Groups/{group_id}?attributes=members.value", token)
            assert status == 200
            assert len(json.loads(body)["members"]) == args.members

    head, tail = timings[:5], timings[-5:]
    first, last = statistics.median(head), statistics.median(tail)
    ratio = last / first
    print(f"database: {'postgresql' if args.postgres else 'sqlite'}, workers: {args.workers}")
    print(f"users created: {args.members} in {setup_seconds:.1f} s")
    print(f"{'batch':>6} {'members before':>15} {'ms':>8}")
    for index in [
        0,
        1,
        2,
        3,
        4,
        len(timings) - 5,
        len(timings) - 4,
        len(timings) - 3,
        len(timings) - 2,
        len(timings) - 1,
    ]:
        print(f"{index + 1:>6} {index * args.batch:>15} {timings[index] * 1000:>8.1f}")
    print(
        f"median of first 5: {first * 1000:.1f} ms; of last 5: {last * 1000:.1f} ms; "
        f"ratio {ratio:.2f} -> {'PASS' if ratio <= 1.5 else 'FAIL'} (limit 1.5)"
    )
    print(
        json.dumps(
            {
                "database": "postgresql" if args.postgres else "sqlite",
                "members": args.members,
                "batch": args.batch,
                "first_ms": round(first * 1000, 2),
                "last_ms": round(last * 1000, 2),
                "ratio": round(ratio, 3),
                "all_ms": [round(t * 1000, 2) for t in timings],
            }
        )
    )


if __name__ == "__main__":
    main()
