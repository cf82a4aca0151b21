"""Time a full /Bulk request (maxOperations user creations) against the same single requests.

A bulk request holds one worker thread until its last operation; an IdP waits for the whole
answer (Okta gives up after 60 s). This measures how long the largest request the server accepts
by default takes, and what one operation costs inside it compared with its single request.

    python bench/bulk_throughput.py                       # SQLite, a fresh file in a temp folder
    python bench/bulk_throughput.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

It starts the server as a user would (``scim-server serve``: gunicorn, production settings),
sends one BulkRequest of N POSTs, one of N PATCHes (deactivate, each with its ``version``), then
N single POSTs one after another, and prints the timings and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

# the server, database and CLI helpers of the group benchmark (run from bench/, as its sibling)
from support import provision, scratch_database, send, serve

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _bulk(
    scim: str, token: str, operations: list[dict[str, Any]]
) -> tuple[float, list[dict[str, Any]]]:
    began = time.perf_counter()
    status, body = send(
        "POST", f"{scim}/Bulk", token, {"schemas": [BULK], "Operations": operations}
    )
    seconds = time.perf_counter() - began
    assert status == 200, body[:500]
    results: list[dict[str, Any]] = json.loads(body)["Operations"]
    assert len(results) == len(operations)
    return seconds, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL to create a scratch database in")
    parser.add_argument("--operations", type=int, default=1000)
    args = parser.parse_args()
    n = args.operations

    with scratch_database(args.postgres, "bench_bulk") as url:
        env = {**os.environ, "SCIM_DATABASE_URL": url}
        token = provision(env)
        with serve(env, 2) as base:
            scim = f"{base}/scim/v2"
            posts = [
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": f"u{i}",
                    "data": {"schemas": [USER], "userName": f"bulk{i}@bench.example"},
                }
                for i in range(n)
            ]
            payload = len(json.dumps({"schemas": [BULK], "Operations": posts}))
            create_s, created = _bulk(scim, token, posts)
            assert all(result["status"] == "201" for result in created)
            patches = [
                {
                    "method": "PATCH",
                    "path": result["location"].split("/scim/v2")[1],
                    "version": result["version"],
                    "data": {
                        "schemas": [PATCH],
                        "Operations": [{"op": "replace", "path": "active", "value": False}],
                    },
                }
                for result in created
            ]
            patch_s, patched = _bulk(scim, token, patches)
            assert all(result["status"] == "200" for result in patched)

            began = time.perf_counter()
            for i in range(n):
                status, body = send(
                    "POST",
                    f"{scim}/Users",
                    token,
                    {"schemas": [USER], "userName": f"single{i}@bench.example"},
                )
                assert status == 201, body
            single_s = time.perf_counter() - began

    database = "postgresql" if args.postgres else "sqlite"
    print(f"database: {database}, operations per request: {n}, payload {payload} bytes")
    print(f"bulk of {n} POST:   {create_s:6.2f} s  ({create_s / n * 1000:.2f} ms/operation)")
    print(f"bulk of {n} PATCH:  {patch_s:6.2f} s  ({patch_s / n * 1000:.2f} ms/operation)")
    print(f"{n} single POSTs: {single_s:6.2f} s  ({single_s / n * 1000:.2f} ms/request)")
    print(
        json.dumps(
            {
                "database": database,
                "operations": n,
                "payload_bytes": payload,
                "bulk_post_s": round(create_s, 3),
                "bulk_patch_s": round(patch_s, 3),
                "single_post_s": round(single_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
