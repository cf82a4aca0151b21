"""Memory of the production server (issue #7): RSS, PSS and USS of gunicorn's master and workers.

    .venv/bin/python bench/server_memory.py                 # SQLite, 1,000 users
    .venv/bin/python bench/server_memory.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

Lighter than ``bench/load.py`` (which measures memory only as a side line of its throughput
scenarios): the server is started the same way (``scim-server init``, ``org create``,
``connection create``, ``scim-server serve`` with ``deploy/gunicorn.conf.py``), then every kind of
request the load benchmark sends runs once per user from a few client threads, so both workers
and all their threads have served creates, reads, filters, list and cursor pages, PATCH, PUT and
group pushes. Memory is sampled every 0.2 s throughout and reported at idle (after ``/healthz``),
at its peak and at the end, per process and summed:

* RSS counts the pages a preloaded master shares with its forks once per process (strict);
* PSS divides each shared page among the processes that map it (the real footprint);
* USS (``Private_Clean + Private_Dirty``) is what each process holds alone: the pages a worker
  has un-shared from the master by writing to them (reference counts, the GC's headers) show
  up here.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from load import (
    GROUP,
    PATCH_OP,
    SCIM,
    MemorySampler,
    Server,
    _children,
    _filter_path,
    _gunicorn,
    user_document,
)
from support import postgres_database, provision


def _rollup(pid: int) -> dict[str, int]:
    """KiB figures of /proc/PID/smaps_rollup: Rss, Pss, and Uss = Private_Clean + Private_Dirty."""
    figures: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                figures[name] = int(parts[0])
    except OSError:
        return {"Rss": 0, "Pss": 0, "Uss": 0}
    uss = figures.get("Private_Clean", 0) + figures.get("Private_Dirty", 0)
    return {"Rss": figures.get("Rss", 0), "Pss": figures.get("Pss", 0), "Uss": uss}


def snapshot(server: Server) -> dict[str, Any]:
    """Per-process and summed RSS/PSS/USS in MiB, the master first."""
    master = server.process.pid
    rows = [("master", master)] + [
        (f"worker {n}", pid) for n, pid in enumerate(_children(master), 1)
    ]
    processes = {label: _rollup(pid) for label, pid in rows}
    total = {key: sum(p[key] for p in processes.values()) for key in ("Rss", "Pss", "Uss")}
    mib = {
        label: {key: round(value / 1024, 1) for key, value in figures.items()}
        for label, figures in {**processes, "total": total}.items()
    }
    return mib


def _print(title: str, figures: dict[str, Any]) -> None:
    print(f"{title}:")
    for label, values in figures.items():
        rss, pss, uss = values["Rss"], values["Pss"], values["Uss"]
        print(f"  {label:9} RSS {rss:6.1f}  PSS {pss:6.1f}  USS {uss:6.1f}")


class Client:
    """One keep-alive connection; every unexpected status stops the run."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = headers

    def send(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        payload = None if body is None else json.dumps(body).encode()
        self.connection.request(method, path, body=payload, headers=self.headers)
        response = self.connection.getresponse()
        data = response.read()
        if response.status != expect:
            raise SystemExit(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data else None


def _users(client: Client, numbers: range) -> None:
    ids = [client.send("POST", "/scim/v2/Users", user_document(n), 201)["id"] for n in numbers]
    for number, user_id in zip(numbers, ids, strict=True):
        client.send("GET", f"/scim/v2/Users/{user_id}")
        client.send("GET", _filter_path(f"user{number}@bench.example"))
        client.send("GET", _filter_path(f"missing{number}@bench.example"))
        patch = {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "value": {"active": False}}],
        }
        client.send("PATCH", f"/scim/v2/Users/{user_id}", patch)
        client.send("PUT", f"/scim/v2/Users/{user_id}", user_document(number, revision=1))
    for start in range(1, 1 + len(numbers), 100):
        client.send("GET", f"/scim/v2/Users?startIndex={start}&count=100")
    page = client.send("GET", "/scim/v2/Users?cursor=&count=100")
    while page.get("nextCursor"):
        page = client.send("GET", f"/scim/v2/Users?cursor={page['nextCursor']}&count=100")


def _group(client: Client, name: str) -> None:
    group = client.send("POST", "/scim/v2/Groups", {"schemas": [GROUP], "displayName": name}, 201)
    users = client.send("GET", "/scim/v2/Users?startIndex=1&count=1000&attributes=id")
    ids = [resource["id"] for resource in users["Resources"]]
    for start in range(0, len(ids), 100):
        members = [{"value": value} for value in ids[start : start + 100]]
        operation = {"op": "add", "path": "members", "value": members}
        body = {"schemas": [PATCH_OP], "Operations": [operation]}
        client.send("PATCH", f"/scim/v2/Groups/{group['id']}", body, 204)
    for _ in range(10):
        client.send("GET", f"/scim/v2/Groups/{group['id']}")
        client.send("GET", f"/scim/v2/Groups/{group['id']}?excludedAttributes=members")
    for value in ids[:50]:
        operation = {"op": "remove", "path": f'members[value eq "{value}"]'}
        body = {"schemas": [PATCH_OP], "Operations": [operation]}
        client.send("PATCH", f"/scim/v2/Groups/{group['id']}", body, 204)


def _parallel(jobs: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def measure(database_url: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "SCIM_DATABASE_URL": database_url,
        "SCIM_LOG_LEVEL": "warning",
        **dict(item.split("=", 1) for item in args.env),
    }
    token = provision(env, org_name="Memory organisation", connection="Entra")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM, "Accept": SCIM}

    def serve(port: int) -> list[str]:
        return [sys.executable, "-m", "scim_server.cli", "serve", "--port", str(port)]

    with _gunicorn("scim-server", serve, env, workdir / "server.log") as server:
        workers = int(env.get("SCIM_WORKERS", "2"))
        for _ in range(100):  # every worker forked and booted, not only the one that answered
            if len(_children(server.process.pid)) >= workers:
                break
            time.sleep(0.1)
        time.sleep(1.0)
        idle = snapshot(server)
        peak = {"Rss": 0.0, "Pss": 0.0}
        sampler = MemorySampler([server])
        sampler.start()
        try:
            share = args.users // args.clients
            _parallel(
                [
                    partial(
                        _users,
                        Client(server.port, headers),
                        range(1 + n * share, 1 + (n + 1) * share),
                    )
                    for n in range(args.clients)
                ]
            )
            _parallel([partial(_group, Client(server.port, headers), f"g{n}") for n in range(2)])
        finally:
            sampler.stop()
        end = snapshot(server)
        peak["Rss"] = round(server.peak_total_kib / 1024, 1)
        peak["Pss"] = round(server.peak_pss_kib / 1024, 1)
        largest = round(server.peak_process_mib(), 1)
    _print("idle (after /healthz)", idle)
    _print("end of the run", end)
    print(
        f"peak: sum of RSS {peak['Rss']} MiB, sum of PSS {peak['Pss']} MiB,"
        f" largest process (VmHWM) {largest} MiB"
    )
    return {"idle": idle, "end": end, "peak": peak, "largest_process_mib": largest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL admin URL instead of SQLite")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scim-memory-") as folder:
        workdir = Path(folder)
        if args.postgres:
            with postgres_database(args.postgres, "scim_memory") as url:
                result = measure(url, args, workdir)
        else:
            result = measure(f"sqlite:///{workdir / 'scim.db'}", args, workdir)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
