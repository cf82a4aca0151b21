"""Contention an IdP's parallel pushes cause: what conflicts cost the client (issue #7).

Two scenarios through a real server (``scim-server serve``: gunicorn, 2 workers x 4 threads):

- ``delete``: half the client threads PATCH ``add`` the same members into one group again and
  again (an IdP re-pushing a group), the other half DELETE one of those members and create a
  replacement (deprovisioning during the push). Group writes lock the group, then its members; a
  delete changes the user's groups too. Reports answers by status (any 503 is a conflict the
  client was made to retry), the server's re-runs of writes PostgreSQL aborted as deadlock
  victims, and the worst latency.
- ``admin``: client threads create users while an admin runs ``scim-server org update`` (a
  change of the organisation's settings, which every user write reads); reports how long the
  command takes idle and under the traffic.

    python bench/contention.py                    # SQLite, a fresh file in a temp folder
    python bench/contention.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support import ROOT, cli, provision, scratch_database, send, serve

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
RETRIED = "lost to a concurrent transaction"


class Tally:
    """Answers by operation and status, and the slowest answer, across client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: dict[str, collections.Counter[int]] = collections.defaultdict(
            collections.Counter
        )
        self.slowest = 0.0

    def send(self, operation: str, method: str, url: str, token: str, body: Any = None) -> bytes:
        started = time.perf_counter()
        status, raw = send(method, url, token, body)
        elapsed = time.perf_counter() - started
        with self.lock:
            self.statuses[operation][status] += 1
            self.slowest = max(self.slowest, elapsed)
        return raw


def _for(seconds: float, threads: int, work: Callable[[int], None]) -> None:
    """``work(thread number)`` over and over in ``threads`` threads for ``seconds``."""
    deadline = time.monotonic() + seconds

    def loop(number: int) -> None:
        while time.monotonic() < deadline:
            work(number)

    running = [threading.Thread(target=loop, args=(n,)) for n in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()


def _new_user(tally: Tally, scim: str, token: str) -> str:
    body = {"schemas": [USER], "userName": f"{uuid.uuid4().hex[:12]}@bench.example"}
    return str(json.loads(tally.send("create", "POST", f"{scim}/Users", token, body))["id"])


def delete_during_push(
    env: dict[str, str], token: str, seconds: float, threads: int
) -> dict[str, Any]:
    tally = Tally()
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "server.log"
        with serve(env, 2, log) as base:
            scim = f"{base}/scim/v2"
            group = json.loads(
                tally.send(
                    "create",
                    "POST",
                    f"{scim}/Groups",
                    token,
                    {"schemas": [GROUP], "displayName": "Push"},
                )
            )["id"]
            members = [_new_user(tally, scim, token) for _ in range(8)]
            lock = threading.Lock()

            def work(number: int) -> None:
                if number % 2 == 0:
                    with lock:
                        values = [{"value": member} for member in members]
                    body = {
                        "schemas": [PATCH],
                        "Operations": [{"op": "add", "path": "members", "value": values}],
                    }
                    tally.send("group patch", "PATCH", f"{scim}/Groups/{group}", token, body)
                    return
                # each deleting thread owns one member: the replacement joins the next push
                # before the member it replaces leaves, so most pushes name live users only
                slot = (number // 2) % len(members)
                replacement = _new_user(tally, scim, token)
                with lock:
                    leaving, members[slot] = members[slot], replacement
                tally.send("user delete", "DELETE", f"{scim}/Users/{leaving}", token)

            _for(seconds, threads, work)
        retried = [line for line in log.read_text(errors="replace").splitlines() if RETRIED in line]
    return {
        "answers": {op: dict(sorted(c.items())) for op, c in sorted(tally.statuses.items())},
        "answered_503": sum(c[503] for c in tally.statuses.values()),
        "writes_run_again": len(retried),
        "slowest_s": round(tally.slowest, 2),
    }


def _timed_org_update(env: dict[str, str], timezone: str) -> float:
    started = time.perf_counter()
    cli(env, "org", "update", "bench", "--timezone", timezone)
    return round(time.perf_counter() - started, 1)


def admin_under_traffic(
    env: dict[str, str], token: str, seconds: float, threads: int
) -> dict[str, Any]:
    tally = Tally()
    with serve(env, 2) as base:
        scim = f"{base}/scim/v2"
        idle = _timed_org_update(env, "Europe/Paris")
        traffic = threading.Thread(
            target=_for, args=(seconds, threads, lambda _: _new_user(tally, scim, token))
        )
        traffic.start()
        time.sleep(2)
        busy = _timed_org_update(env, "Europe/Berlin")
        traffic.join()
    # the CLI's own start (imports, connection) is most of the idle figure
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "scim_server.cli", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
    )
    return {
        "org_update_idle_s": idle,
        "org_update_under_traffic_s": busy,
        "cli_start_s": round(time.perf_counter() - started, 1),
        "traffic_s": seconds,
        "creates": dict(tally.statuses["create"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL to create a scratch database in")
    parser.add_argument("--seconds", type=float, default=20.0, help="traffic per scenario")
    parser.add_argument("--threads", type=int, default=12, help="client threads")
    parser.add_argument("--scenario", choices=("delete", "admin", "both"), default="both")
    args = parser.parse_args()
    results: dict[str, Any] = {"database": "postgresql" if args.postgres else "sqlite"}
    for name, scenario in (("delete", delete_during_push), ("admin", admin_under_traffic)):
        if args.scenario not in (name, "both"):
            continue
        with scratch_database(args.postgres, "bench_contention") as url:
            env = {**os.environ, "SCIM_DATABASE_URL": url}
            token = provision(env)
            results[name] = scenario(env, token, args.seconds, args.threads)
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
