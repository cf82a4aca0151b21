"""Benchmark (run by hand, not a test): memory of a server worker while it streams a CSV export
of 100,000 provisioning-log events (issue #3; DESIGN §6 "export CSV or JSON Lines, streamed").

The bound: the worker's peak RSS stays within 100 MiB of its idle level. The server is started as
an operator starts it (``scim-server serve --workers 1``), so the measured process is the one
gunicorn worker that serves the export, with the production gunicorn settings.

What is measured, so that nothing flatters the result:

* idle RSS: VmRSS of the fresh worker after it answered ``/healthz`` (before it ever opened a
  database connection or built an export), sampled for one second; the median is the baseline.
* peak RSS: the larger of the highest VmRSS sampled every 20 ms during the export and the
  kernel's own high-water mark VmHWM, which is reset (``clear_refs``) just before the export so
  it covers exactly the export, including any spike between two samples.
* the client parses the whole CSV (``csv.reader``) as it arrives, checks the header, counts the
  records and checks that ``seq`` runs 1..N: a truncated or buffered-then-dropped stream fails.

The log holds 99,999 events when the export starts: three from setup through the CLI
(``org create``, ``connection create``, ``token create``) and synthetic SCIM traffic. The export's
own ``audit.export`` event is committed before the stream opens its transaction, so the export
is exactly 100,000 events: 100,001 lines with the header.

Usage::

    .venv/bin/python bench/audit_export_memory.py
    .venv/bin/python bench/audit_export_memory.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

``--postgres`` names a database the script may connect to in order to create (and afterwards
drop) its own throw-away database. Exit status 1 if any run exceeds the bound or fails a check.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import support
from sqlalchemy import insert, select
from support import postgres_database

from scim_server.audit.chain import canonical_fields, event_hash
from scim_server.audit.events import MAX_DETAIL, EventDraft, document_changes, redact
from scim_server.audit.query import CSV_COLUMNS
from scim_server.scim.schema import ENTERPRISE_USER
from scim_server.services.tokens import token_prefix
from scim_server.store.db import Database
from scim_server.store.models import AuditChain, AuditEvent, Organization
from scim_server.store.types import utcnow

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
SLUG = "bench"
SAMPLE_INTERVAL = 0.02
INSERT_BATCH = 5000
READ_CHUNK = 64 * 1024


# -- the log: setup through the CLI, then synthetic SCIM traffic --------------------------------


def cli(database_url: str, *args: str) -> str:
    """``scim-server ARGS`` as an operator runs it, on ``database_url``; its stdout."""
    return support.cli({**os.environ, "SCIM_DATABASE_URL": database_url}, *args)


@dataclass(frozen=True)
class Setup:
    org_id: int
    connection_id: str
    connection_prefix: str
    audit_token: str


def set_up(database_url: str) -> Setup:
    cli(database_url, "init")
    cli(database_url, "org", "create", SLUG, "--name", "Benchmark organisation")
    connection = json.loads(
        cli(database_url, "connection", "create", "--org", SLUG, "--name", "Okta", "--json")
    )
    audit_token = json.loads(
        cli(database_url, "token", "create", "--org", SLUG, "--scope", "audit", "--json")
    )["token"]
    database = Database(database_url)
    try:
        with database.transaction(write=False) as session:
            org_id = session.scalar(select(Organization.id).where(Organization.slug == SLUG))
    finally:
        database.dispose()
    assert org_id is not None
    prefix = token_prefix(connection["token"])
    return Setup(org_id, connection["connection_id"], prefix, audit_token)


_GIVEN = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret"]
_FAMILY = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]
_DEPARTMENTS = ["Engineering", "Finance", "Sales", "Support", "Legal", "Operations"]


def _user_document(rng: random.Random, number: int) -> dict[str, Any]:
    given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
    user_name = f"{given}.{family}{number}@example.com".lower()
    return {
        "userName": user_name,
        "externalId": uuid.UUID(int=rng.getrandbits(128)).hex,
        "name": {"givenName": given, "familyName": family, "formatted": f"{given} {family}"},
        "displayName": f"{given} {family}",
        "title": rng.choice(["Engineer", "Analyst", "Manager", "Director"]),
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
        ENTERPRISE_USER: {
            "department": rng.choice(_DEPARTMENTS),
            "employeeNumber": str(100000 + number),
        },
    }


def synthetic_draft(rng: random.Random, number: int, setup: Setup) -> EventDraft:
    """One event as a busy Okta connection produces them: mostly reads, then changes, some
    refusals. ``changes`` are computed by the product's own ``document_changes``."""
    user = _user_document(rng, number % 5000)
    user_id = str(uuid.UUID(int=rng.getrandbits(128)))
    draft = EventDraft(
        operation="user.read",
        org_id=setup.org_id,
        actor_type="connection",
        actor=setup.connection_id,
        token_prefix=setup.connection_prefix,
        request_id=uuid.UUID(int=rng.getrandbits(128)).hex,
        client_ip=f"52.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        user_agent="Okta SCIM Client 1.0.0",
        resource_type="User",
        resource_id=user_id,
        user_name=user["userName"],
        status=200,
    )
    roll = rng.random()
    extensions = (ENTERPRISE_USER,)
    if roll < 0.30:
        pass  # user.read
    elif roll < 0.45:
        draft.operation, draft.resource_id = "user.list", None
        draft.detail = f'filter: userName eq "{user["userName"]}"'
    elif roll < 0.60:
        draft.operation, draft.status = "user.create", 201
        draft.changes = document_changes(None, user, extensions)
    elif roll < 0.80:
        draft.operation = "user.patch"
        after = {**user, "active": False} if rng.random() < 0.5 else {**user, "title": "Lead"}
        draft.changes = document_changes(user, after, extensions)
    elif roll < 0.88:
        draft.operation = "user.replace"
        after = {**user, "displayName": user["displayName"] + " Jr.", "title": "Principal"}
        draft.changes = document_changes(user, after, extensions)
    elif roll < 0.93:
        draft.operation, draft.status = "user.delete", 204
        draft.changes = document_changes(user, None, extensions)
    elif roll < 0.97:
        draft.operation, draft.status, draft.resource_id = "user.create", 409, None
        draft.scim_type = "uniqueness"
        draft.detail = (
            f'userName "{user["userName"]}" is already taken in this organisation '
            "(userName is unique, case-insensitively)"
        )
    else:
        draft.operation, draft.status = "auth.failed", 401
        draft.resource_type = draft.resource_id = draft.user_name = None
        draft.detail = "the bearer token is invalid, expired or revoked"
    return draft


def seed(database: Database, setup: Setup, count: int, rng: random.Random) -> None:
    """Append ``count`` events to the organisation's chain, sealed as ``chain.append`` seals them.

    ``chain.append`` costs a locked read, an INSERT and an UPDATE per event through the ORM
    (measured: 47 s per 100,000 events on SQLite, 147 s on PostgreSQL), so the events are
    sealed here with the product's own ``canonical_fields``/``event_hash``/``redact`` and
    inserted in batches, under the chain head's lock, in one transaction. ``audit verify``
    then recomputes every hash: a chain this function got wrong would fail the benchmark.
    """
    with database.transaction(write=True) as session:
        head = session.scalar(
            select(AuditChain).where(AuditChain.org_id == setup.org_id).with_for_update()
        )
        assert head is not None
        seq, previous = head.last_seq, head.last_hash
        start: datetime = utcnow() - timedelta(days=90)
        step = timedelta(days=89) / count
        batch: list[dict[str, Any]] = []
        for number in range(count):
            draft = synthetic_draft(rng, number, setup)
            seq += 1
            event = AuditEvent(
                org_id=draft.org_id,
                seq=seq,
                time=start + step * number,
                actor_type=draft.actor_type,
                actor=draft.actor,
                token_prefix=draft.token_prefix,
                request_id=draft.request_id,
                client_ip=draft.client_ip,
                user_agent=draft.user_agent,
                operation=draft.operation,
                outcome=draft.outcome,
                status=draft.status,
                scim_type=draft.scim_type,
                detail=draft.detail[:MAX_DETAIL] if draft.detail else draft.detail,
                resource_type=draft.resource_type,
                resource_id=draft.resource_id,
                user_name=draft.user_name,
                changes=redact(draft.changes) if draft.changes is not None else None,
                prev_hash=previous,
            )
            fields = canonical_fields(event)
            event.hash = previous = event_hash(fields)
            batch.append({**fields, "time": event.time, "hash": event.hash})
            if len(batch) == INSERT_BATCH:
                session.execute(insert(AuditEvent), batch)
                batch.clear()
        if batch:
            session.execute(insert(AuditEvent), batch)
        head.last_seq, head.last_hash = seq, previous


# -- the server and its worker's memory --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if path.exists():
        return [int(child) for child in path.read_text().split()]
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


@dataclass(frozen=True)
class Running:
    port: int
    master: int
    worker: int


@contextmanager
def server(database_url: str, log_path: Path) -> Iterator[Running]:
    port = _free_port()
    env = {**os.environ, "SCIM_DATABASE_URL": database_url, "SCIM_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "scim_server.cli", "serve", "--workers", "1"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/healthz")
                connection.getresponse().read()
                connection.close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start:\n{log_path.read_text()}") from None
                time.sleep(0.1)
        workers = _children(process.pid)  # `serve` execs gunicorn: this pid is the master
        if len(workers) != 1:
            raise SystemExit(f"expected one gunicorn worker, found {workers}")
        yield Running(port, process.pid, workers[0])
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Sampler(threading.Thread):
    """VmRSS of one process every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = SAMPLE_INTERVAL) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[int] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append(_status_kib(self.pid, "VmRSS"))
            self._stop_event.wait(self.interval)

    def stop(self) -> list[int]:
        self._stop_event.set()
        self.join()
        return self.samples


class _Counted(io.RawIOBase):
    """The response body as a raw stream, counting bytes on the way to the CSV parser."""

    def __init__(self, source: http.client.HTTPResponse) -> None:
        self.source = source
        self.bytes = 0
        self.newlines = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.source.read1(min(len(buffer), READ_CHUNK))
        size = len(data)
        buffer[:size] = data
        self.bytes += size
        self.newlines += data.count(b"\n")
        return size


@dataclass(frozen=True)
class Export:
    status: int
    rows: int
    lines: int
    bytes: int
    seconds: float
    header_ok: bool
    seqs_ok: bool
    last_operation: str


def export_csv(port: int, token: str) -> Export:
    """GET /audit/v1/events?format=csv, parsed as it streams in."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.monotonic()
    connection.request(
        "GET", "/audit/v1/events?format=csv", headers={"Authorization": f"Bearer {token}"}
    )
    response = connection.getresponse()
    counted = _Counted(response)
    reader = csv.reader(
        io.TextIOWrapper(io.BufferedReader(counted, READ_CHUNK), encoding="utf-8", newline="")
    )
    header = next(reader, [])
    seq_at = CSV_COLUMNS.index("seq")
    operation_at = CSV_COLUMNS.index("operation")
    rows, seqs_ok, last_operation = 1, True, ""
    for record in reader:
        rows += 1
        seqs_ok = seqs_ok and record[seq_at] == str(rows - 1)
        last_operation = record[operation_at]
    seconds = time.monotonic() - started
    connection.close()
    return Export(
        status=response.status,
        rows=rows,
        lines=counted.newlines,
        bytes=counted.bytes,
        seconds=seconds,
        header_ok=header == CSV_COLUMNS,
        seqs_ok=seqs_ok,
        last_operation=last_operation,
    )


# -- one run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    database: str
    events: int
    seed_seconds: float
    verify_seconds: float
    idle_rss_mib: float
    peak_rss_mib: float
    peak_sampled_mib: float
    peak_hwm_mib: float
    after_rss_mib: float
    delta_mib: float
    bound_mib: float
    rows: int
    lines: int
    bytes: int
    seconds: float
    samples: int
    checks_ok: bool
    passed: bool


def run(database_url: str, label: str, events: int, bound_mib: float, workdir: Path) -> Result:
    setup = set_up(database_url)
    database = Database(database_url)
    try:
        with database.transaction(write=False) as session:
            head = session.get(AuditChain, setup.org_id)
            assert head is not None
            logged = head.last_seq
        started = time.monotonic()
        seed(database, setup, events - logged - 1, random.Random(2026))
        seed_seconds = time.monotonic() - started
    finally:
        database.dispose()

    started = time.monotonic()
    verified = json.loads(cli(database_url, "audit", "verify", "--org", SLUG, "--json"))
    verify_seconds = time.monotonic() - started
    if not verified["ok"] or verified["events"] != events - 1:
        raise SystemExit(f"the seeded chain does not verify: {verified}")
    print(f"[{label}] seeded {events - 1} events in {seed_seconds:.1f}s; verified.", flush=True)

    with server(database_url, workdir / f"server-{label}.log") as running:
        time.sleep(0.5)
        idle_sampler = Sampler(running.worker)
        idle_sampler.start()
        time.sleep(1.0)
        idle_kib = statistics.median(idle_sampler.stop())
        Path(f"/proc/{running.worker}/clear_refs").write_text("5")  # reset VmHWM to VmRSS
        sampler = Sampler(running.worker)
        sampler.start()
        export = export_csv(running.port, setup.audit_token)
        samples = sampler.stop()
        hwm_kib = _status_kib(running.worker, "VmHWM")
        after_kib = _status_kib(running.worker, "VmRSS")
    server_log = (workdir / f"server-{label}.log").read_text(errors="replace")

    peak_kib = max(max(samples), hwm_kib)
    delta_mib = (peak_kib - idle_kib) / 1024
    checks_ok = (
        export.status == 200
        and export.rows == events + 1
        and export.lines == events + 1
        and export.header_ok
        and export.seqs_ok
        and export.last_operation == "audit.export"
    )
    if not checks_ok:
        print(f"[{label}] export checks failed: {export}\n{server_log[-4000:]}", flush=True)
    return Result(
        database=label,
        events=events,
        seed_seconds=round(seed_seconds, 1),
        verify_seconds=round(verify_seconds, 1),
        idle_rss_mib=round(idle_kib / 1024, 1),
        peak_rss_mib=round(peak_kib / 1024, 1),
        peak_sampled_mib=round(max(samples) / 1024, 1),
        peak_hwm_mib=round(hwm_kib / 1024, 1),
        after_rss_mib=round(after_kib / 1024, 1),
        delta_mib=round(delta_mib, 1),
        bound_mib=bound_mib,
        rows=export.rows,
        lines=export.lines,
        bytes=export.bytes,
        seconds=round(export.seconds, 2),
        samples=len(samples),
        checks_ok=checks_ok,
        passed=checks_ok and delta_mib <= bound_mib,
    )


def report(result: Result) -> None:
    verdict = "PASS" if result.passed else "FAIL"
    print(
        f"[{result.database}] export of {result.events} events as CSV\n"
        f"  idle RSS   {result.idle_rss_mib:8.1f} MiB\n"
        f"  peak RSS   {result.peak_rss_mib:8.1f} MiB  (sampled {result.peak_sampled_mib}, "
        f"VmHWM {result.peak_hwm_mib}; {result.samples} samples)\n"
        f"  delta      {result.delta_mib:8.1f} MiB  (bound {result.bound_mib:g} MiB)\n"
        f"  after      {result.after_rss_mib:8.1f} MiB\n"
        f"  rows       {result.rows:8d}  (lines {result.lines}, incl. header)\n"
        f"  bytes      {result.bytes:8d}\n"
        f"  seconds    {result.seconds:8.2f}\n"
        f"  checks     {'ok' if result.checks_ok else 'FAILED'}\n"
        f"  {verdict}",
        flush=True,
    )
    print(json.dumps({**asdict(result), "python": platform.python_version()}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events in the export")
    parser.add_argument("--bound-mib", type=float, default=100.0)
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL (admin URL)")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()

    results = []
    workdir = Path(tempfile.mkdtemp(prefix="scim-bench-"))
    try:
        if not args.skip_sqlite:
            url = f"sqlite:///{workdir / 'bench.db'}"
            results.append(run(url, "sqlite", args.events, args.bound_mib, workdir))
            report(results[-1])
        if args.postgres:
            with postgres_database(args.postgres) as url:
                results.append(run(url, "postgresql", args.events, args.bound_mib, workdir))
                report(results[-1])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if results and all(result.passed for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
