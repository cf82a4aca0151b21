"""Load benchmark (issue #7): scim-server under an IdP's bursts, as a ratio to a ceiling app.

    .venv/bin/python bench/load.py                      # SQLite, 10,000 users
    .venv/bin/python bench/load.py --quick              # 1,000 users, short scenarios
    .venv/bin/python bench/load.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

The server is started as an operator starts it (``scim-server init``, ``org create``,
``connection create --json``, ``scim-server serve`` with ``deploy/gunicorn.conf.py``) in a
temporary folder. Beside it, ``bench/ceiling_app.py`` (minimal Flask + SQLAlchemy on SQLite, no
validation, no audit) runs on the same gunicorn settings. The creates and the timed scenarios
run against both in alternating rounds (server, ceiling, ceiling, server, ...) and are reported
as the median of the rounds' ratios to the ceiling, so the figures hold on a busy machine; the
group build and the removals (one client, each request once, in order) run once on each. The
ratio of server CPU per operation is reported beside every ratio.

The client is a set of forked processes, each with one keep-alive ``http.client`` connection,
closed loop; their CPU time is reported beside the server's so one can see it is not the
bottleneck. Server CPU per operation comes from ``/proc/<pid>/stat`` of the gunicorn master and
workers (the master's ``cutime``/``cstime`` keep the time of recycled workers), and that of this
machine's PostgreSQL processes beside it (a local database shares the cores); peak RSS from each
process's ``VmHWM``, and the largest sum of ``VmRSS`` over the process tree, sampled every 0.2 s.

Output: a table on stdout and a JSON file (``--json PATH``, default ``bench/results/load.json``,
which git ignores).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from support import (
    ROOT,
    cpu_ticks,
    database_cpu_seconds,
    gather_statistics,
    postgres_database,
    provision,
)

SCIM = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024

Request = tuple[str, str, bytes | None]


# -- processes: the two servers and what /proc says about them ---------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _status_kib(pid: int, name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kib(pid: int) -> int:
    """Proportional set size: pages shared by the preloaded master and its forks counted once."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Server:
    """One gunicorn process tree on a port, with its CPU and memory as /proc reports them."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    peak_hwm_kib: dict[int, int] = field(default_factory=dict)
    peak_total_kib: int = 0
    peak_pss_kib: int = 0

    def pids(self) -> list[int]:
        return [self.process.pid, *_children(self.process.pid)]

    def cpu_seconds(self) -> float:
        master = self.process.pid
        ticks = cpu_ticks(master, with_reaped=True)
        ticks += sum(cpu_ticks(pid, with_reaped=False) for pid in _children(master))
        return ticks / CLOCK_TICKS

    def sample_memory(self) -> None:
        total = pss = 0
        for pid in self.pids():
            total += _status_kib(pid, "VmRSS")
            pss += _pss_kib(pid)
            self.peak_hwm_kib[pid] = max(self.peak_hwm_kib.get(pid, 0), _status_kib(pid, "VmHWM"))
        self.peak_total_kib = max(self.peak_total_kib, total)
        self.peak_pss_kib = max(self.peak_pss_kib, pss)

    def peak_process_mib(self) -> float:
        return max(self.peak_hwm_kib.values(), default=0) / 1024

    def workers_seen(self) -> int:
        return len(self.peak_hwm_kib) - 1


def serve_command(port: int) -> list[str]:
    """scim-server as an operator starts it (``deploy/gunicorn.conf.py``, the environment's
    ``SCIM_*`` settings)."""
    return [sys.executable, "-m", "scim_server.cli", "serve", "--port", str(port)]


def ceiling_command(port: int) -> list[str]:
    """The ceiling app on the same gunicorn settings."""
    config = str(ROOT / "bench/ceiling_gunicorn.py")
    bind = f"127.0.0.1:{port}"
    folder = str(ROOT / "bench")  # ceiling_app is imported by its own name, as in the scripts
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", config, "--pythonpath", folder]
    return [*gunicorn, "-b", bind, "ceiling_app:app"]


@contextmanager
def _gunicorn(
    name: str, command: Callable[[int], list[str]], env: dict[str, str], log: Path
) -> Iterator[Server]:
    port = _free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command(port),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,  # the access log: written by both servers alike
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/healthz")
                connection.getresponse().read()
                connection.close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    raise SystemExit(f"{name} did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield Server(name, port, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class MemorySampler(threading.Thread):
    """Samples both servers' memory every 0.2 s for the whole run."""

    def __init__(self, servers: Sequence[Server]) -> None:
        super().__init__(daemon=True)
        self.servers = servers
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for server in self.servers:
                server.sample_memory()
            self.halt.wait(0.2)

    def stop(self) -> None:
        self.halt.set()
        self.join()
        for server in self.servers:
            server.sample_memory()


@dataclass(frozen=True)
class Job:
    """What one client process sends: ``requests`` in order (cycled until ``seconds`` if set)."""

    port: int
    headers: dict[str, str]
    requests: list[Request]
    expected: tuple[int, ...]
    seconds: float | None
    collect_ids: bool


def _client(job: Job, start: Any, out: Connection) -> None:
    """One client process: a keep-alive connection, one request at a time."""
    connection = http.client.HTTPConnection("127.0.0.1", job.port, timeout=120)
    latencies: list[float] = []
    ids: list[str] = []
    errors = 0
    first_error = ""
    start.wait()
    cpu_before = os.times()
    began = time.perf_counter()
    index = 0
    while True:
        if job.seconds is None:
            if index >= len(job.requests):
                break
        elif time.perf_counter() - began >= job.seconds:
            break
        method, path, body = job.requests[index % len(job.requests)]
        index += 1
        sent = time.perf_counter()
        try:
            connection.request(method, path, body=body, headers=job.headers)
            response = connection.getresponse()
            payload = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", job.port, timeout=120)
            payload, status = str(error).encode(), 0
        latencies.append(time.perf_counter() - sent)
        if status not in job.expected:
            errors += 1
            first_error = first_error or f"{method} {path} -> {status}: {payload[:300]!r}"
        elif job.collect_ids:
            ids.append(json.loads(payload)["id"])
    cpu_after = os.times()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    out.send((latencies, errors, first_error, ids, cpu))
    out.close()


@dataclass
class Outcome:
    """One scenario against one server."""

    ops: int
    seconds: float
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    first_error: str
    server_cpu_ms_per_op: float
    database_cpu_ms_per_op: float
    client_cpu_ms_per_op: float
    client_cpu_cores: float
    latencies_ms: list[float] = field(repr=False)
    ids: list[str] = field(repr=False)


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def drive(
    server: Server,
    headers: dict[str, str],
    requests: Sequence[Request],
    *,
    clients: int,
    seconds: float | None,
    expected: tuple[int, ...] = (200,),
    collect_ids: bool = False,
) -> Outcome:
    """Send ``requests`` with ``clients`` processes; requests are dealt round-robin."""
    context = multiprocessing.get_context("fork")
    start = context.Event()
    if seconds is not None and 0 < len(requests) < clients:
        # a timed scenario cycles its requests, so every client may send them all: one request
        # (a deep page, a group GET) then runs at the concurrency asked for, not at one client
        requests = list(requests) * -(-clients // len(requests))
    clients = max(1, min(clients, len(requests)))
    pipes, processes = [], []
    for number in range(clients):
        job = Job(
            server.port, headers, list(requests[number::clients]), expected, seconds, collect_ids
        )
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_client, args=(job, start, send))
        process.start()
        send.close()
        pipes.append(receive)
        processes.append(process)
    time.sleep(0.2)  # let the clients reach the start line
    cpu_before, database_before = server.cpu_seconds(), database_cpu_seconds()
    began = time.perf_counter()
    start.set()
    results = [pipe.recv() for pipe in pipes]
    wall = time.perf_counter() - began
    cpu = server.cpu_seconds() - cpu_before
    database_cpu = database_cpu_seconds() - database_before
    for process in processes:
        process.join()
    ids: list[str] = []
    if collect_ids:  # in the order the requests were given, as the round-robin dealt them
        per_client = [result[3] for result in results]
        for index in range(max(len(chunk) for chunk in per_client)):
            ids.extend(chunk[index] for chunk in per_client if index < len(chunk))
    return _outcome(
        latencies=[latency for result in results for latency in result[0]],
        wall=wall,
        errors=sum(result[1] for result in results),
        first_error=next((result[2] for result in results if result[2]), ""),
        server_cpu=cpu,
        database_cpu=database_cpu,
        client_cpu=sum(result[4] for result in results),
        ids=ids,
    )


def _outcome(
    *,
    latencies: list[float],
    wall: float,
    errors: int,
    first_error: str,
    server_cpu: float,
    database_cpu: float,
    client_cpu: float,
    ids: list[str],
) -> Outcome:
    """An Outcome from totals in seconds; ``latencies`` in the order the requests were sent."""
    ops = len(latencies)
    ordered = sorted(latencies)
    return Outcome(
        ops=ops,
        seconds=round(wall, 3),
        ops_per_s=round(ops / wall, 1) if wall else 0.0,
        p50_ms=round(_percentile(ordered, 0.5) * 1000, 2),
        p99_ms=round(_percentile(ordered, 0.99) * 1000, 2),
        errors=errors,
        first_error=first_error,
        server_cpu_ms_per_op=round(server_cpu * 1000 / max(ops, 1), 3),
        database_cpu_ms_per_op=round(database_cpu * 1000 / max(ops, 1), 3),
        client_cpu_ms_per_op=round(client_cpu * 1000 / max(ops, 1), 3),
        client_cpu_cores=round(client_cpu / wall, 2) if wall else 0.0,
        latencies_ms=[round(latency * 1000, 3) for latency in latencies],
        ids=ids,
    )


def merged(outcomes: Sequence[Outcome]) -> Outcome:
    """The rounds of one scenario on one server, as if they had been one run."""

    def total(per_op_ms: Callable[[Outcome], float]) -> float:  # seconds
        return sum(per_op_ms(o) * o.ops for o in outcomes) / 1000

    return _outcome(
        latencies=[latency / 1000 for o in outcomes for latency in o.latencies_ms],
        wall=sum(o.seconds for o in outcomes),
        errors=sum(o.errors for o in outcomes),
        first_error=next((o.first_error for o in outcomes if o.first_error), ""),
        server_cpu=total(lambda o: o.server_cpu_ms_per_op),
        database_cpu=total(lambda o: o.database_cpu_ms_per_op),
        client_cpu=total(lambda o: o.client_cpu_ms_per_op),
        ids=[identifier for o in outcomes for identifier in o.ids],
    )


@dataclass
class Pair:
    """One scenario on both servers, in rounds."""

    server: Outcome
    ceiling: Outcome
    round_ratios: list[float]


def drive_pair(
    server: Server,
    ceiling: Server,
    headers: dict[str, str],
    requests: Callable[[Server], Sequence[Request]],
    *,
    rounds: int,
    clients: int,
    seconds: float | None,
    expected: tuple[int, ...] = (200,),
    collect_ids: bool = False,
) -> Pair:
    """A scenario on both servers in alternating rounds: server, ceiling, ceiling, server, ...

    A burst of other work on the machine (another tenant, a frequency change) that lasts
    seconds then falls on both servers alike, and the ratio reported is the median of the
    rounds' ratios, so with 3 rounds or more one disturbed round does not move it. A timed
    scenario gives each round ``seconds / rounds`` and starts it where the server's previous
    round stopped in the list: a PATCH ``active=false`` sent again to the same user changes
    nothing, which scim-server answers without writing while the ceiling writes anyway. One
    that sends each request once sends the ``rounds`` parts of its list in turn (the creates:
    users 0-2,499 to both, then 2,500-4,999, ...).
    """
    lists = {target.name: list(requests(target)) for target in (server, ceiling)}
    done: dict[str, list[Outcome]] = {server.name: [], ceiling.name: []}
    ratios: list[float] = []
    for number in range(rounds):
        order = (server, ceiling) if number % 2 == 0 else (ceiling, server)
        for target in order:
            sent = lists[target.name]
            if seconds is None:  # this round's part of the list
                sent = sent[len(sent) * number // rounds : len(sent) * (number + 1) // rounds]
            elif sent:  # on from where the previous rounds stopped
                skip = sum(outcome.ops for outcome in done[target.name]) % len(sent)
                sent = sent[skip:] + sent[:skip]
            done[target.name].append(
                drive(
                    target,
                    headers,
                    sent,
                    clients=clients,
                    seconds=None if seconds is None else seconds / rounds,
                    expected=expected,
                    collect_ids=collect_ids,
                )
            )
        ours, theirs = done[server.name][-1], done[ceiling.name][-1]
        if ours.ops and theirs.ops:  # an empty part (fewer requests than rounds) has no ratio
            ratios.append(ours.ops_per_s / theirs.ops_per_s)
    return Pair(merged(done[server.name]), merged(done[ceiling.name]), ratios)


def _get(server: Server, headers: dict[str, str], path: str) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    if response.status != 200:
        raise SystemExit(f"GET {path} on {server.name}: {response.status} {body[:500]!r}")
    return json.loads(body)


# -- the documents and scenarios -----------------------------------------------------------------


def user_document(number: int, *, revision: int = 0) -> dict[str, Any]:
    """The user an IdP pushes: Okta's/Entra's usual attributes and the enterprise extension."""
    given, family = f"Given{number}", f"Family{number}"
    user_name = f"user{number}@bench.example"
    return {
        "schemas": [USER, ENTERPRISE],
        "userName": user_name,
        "externalId": f"ext-{number}",
        "name": {"givenName": given, "familyName": family, "formatted": f"{given} {family}"},
        "displayName": f"{given} {family}" + (f" r{revision}" if revision else ""),
        "title": "Engineer" if revision % 2 == 0 else "Lead Engineer",
        "active": True,
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "phoneNumbers": [{"value": f"+1 555 {number:07d}", "type": "work"}],
        ENTERPRISE: {"employeeNumber": str(number), "department": f"Dept {number % 40}"},
    }


def _body(document: Any) -> bytes:
    return json.dumps(document).encode()


def _filter_path(user_name: str) -> str:
    return "/scim/v2/Users?filter=" + f'userName eq "{user_name}"'.replace(" ", "%20").replace(
        '"', "%22"
    )


@dataclass
class Row:
    """One line of the table: the scenario on scim-server and on the ceiling."""

    scenario: str
    server: dict[str, Any] | None
    ceiling: dict[str, Any] | None
    ratio: float | None
    note: str = ""
    #: each round's ratio of throughputs (``ratio`` is their median)
    round_ratios: list[float] = field(default_factory=list)
    #: the ceiling's server CPU per operation over ours: the steadier figure on a busy machine
    cpu_ratio: float | None = None


def _summary(outcome: Outcome) -> dict[str, Any]:
    document = asdict(outcome)
    document.pop("latencies_ms")
    document.pop("ids")
    return document


@dataclass
class Run:
    """Everything one benchmark run measures against one database."""

    database: str
    users: int
    rows: list[Row] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add_pair(self, scenario: str, pair: Pair) -> None:
        self.add(scenario, pair.server, pair.ceiling, round_ratios=pair.round_ratios)

    def add(
        self,
        scenario: str,
        server: Outcome | None,
        ceiling: Outcome | None,
        note: str = "",
        round_ratios: Sequence[float] = (),
    ) -> None:
        ratio = cpu_ratio = None
        if server is not None and ceiling is not None and ceiling.ops_per_s:
            ratio = round(server.ops_per_s / ceiling.ops_per_s, 2)
            if round_ratios:
                ratio = round(statistics.median(round_ratios), 2)
            if server.server_cpu_ms_per_op:
                cpu_ratio = round(ceiling.server_cpu_ms_per_op / server.server_cpu_ms_per_op, 2)
        self.rows.append(
            Row(
                scenario,
                None if server is None else _summary(server),
                None if ceiling is None else _summary(ceiling),
                ratio,
                note,
                [round(value, 3) for value in round_ratios],
                cpu_ratio,
            )
        )
        line = f"  {scenario:<34}"
        for label, outcome in (("scim", server), ("ceil", ceiling)):
            if outcome is not None:
                line += (
                    f" {label} {outcome.ops_per_s:8.1f}/s p50 {outcome.p50_ms:7.2f}"
                    f" p99 {outcome.p99_ms:7.2f} err {outcome.errors}"
                )
        if ratio is None:
            line += f"  {note}"
        else:
            line += f"  ratio {ratio}"
            if len(round_ratios) > 1:
                line += f" (rounds {min(round_ratios):.2f}-{max(round_ratios):.2f})"
            if cpu_ratio is not None:
                line += f", CPU {cpu_ratio}"
        print(line, flush=True)
        for outcome in (server, ceiling):
            if outcome is not None and outcome.errors:
                print(f"    first error: {outcome.first_error}", flush=True)


def benchmark(database_url: str, label: str, args: argparse.Namespace, workdir: Path) -> Run:
    users = args.users
    env = {
        **os.environ,
        "SCIM_DATABASE_URL": database_url,
        "SCIM_WORKERS": str(args.workers),
        "SCIM_THREADS": str(args.threads),
        "SCIM_LOG_LEVEL": "warning",
        "CEILING_DATABASE_URL": f"sqlite:///{workdir / f'ceiling-{label}.db'}",
    }
    token = provision(env, org_name="Benchmark organisation", connection="Entra")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM, "Accept": SCIM}
    run = Run(label, users)

    with (
        _gunicorn("scim-server", serve_command, env, workdir / f"server-{label}.log") as server,
        _gunicorn("ceiling", ceiling_command, env, workdir / f"ceiling-{label}.log") as ceiling,
    ):
        sampler = MemorySampler([server, ceiling])
        sampler.start()
        try:
            _scenarios(run, server, ceiling, headers, args, lambda: gather_statistics(database_url))
        finally:
            sampler.stop()
        run.extra["server_peak_process_rss_mib"] = round(server.peak_process_mib(), 1)
        run.extra["server_peak_total_rss_mib"] = round(server.peak_total_kib / 1024, 1)
        run.extra["server_peak_total_pss_mib"] = round(server.peak_pss_kib / 1024, 1)
        run.extra["server_processes_seen"] = len(server.peak_hwm_kib)
        run.extra["ceiling_peak_process_rss_mib"] = round(ceiling.peak_process_mib(), 1)
        run.extra["ceiling_peak_total_rss_mib"] = round(ceiling.peak_total_kib / 1024, 1)
        run.extra["ceiling_peak_total_pss_mib"] = round(ceiling.peak_pss_kib / 1024, 1)
    print(
        f"  peak RSS: scim-server largest process {run.extra['server_peak_process_rss_mib']} MiB,"
        f" all processes together {run.extra['server_peak_total_rss_mib']} MiB RSS,"
        f" {run.extra['server_peak_total_pss_mib']} MiB PSS"
        f" ({run.extra['server_processes_seen']} processes seen; ceiling"
        f" {run.extra['ceiling_peak_process_rss_mib']} /"
        f" {run.extra['ceiling_peak_total_rss_mib']})",
        flush=True,
    )
    return run


def _scenarios(
    run: Run,
    server: Server,
    ceiling: Server,
    headers: dict[str, str],
    args: argparse.Namespace,
    after_load: Callable[[], None],
) -> None:
    users = args.users
    both = (server, ceiling)

    def each(
        scenario: str,
        requests: Callable[[Server], Sequence[Request]],
        *,
        expected: tuple[int, ...] = (200,),
        timed: bool = True,
    ) -> Pair:
        pair = drive_pair(
            server,
            ceiling,
            headers,
            requests,
            rounds=args.rounds,
            clients=args.clients,
            seconds=args.seconds if timed else None,
            expected=expected,
            collect_ids=scenario == "create user",
        )
        run.add_pair(scenario, pair)
        return pair

    # create: the IdP's initial cycle, every user once, through the API
    creates = [("POST", "/scim/v2/Users", _body(user_document(n))) for n in range(users)]
    created = each("create user", lambda _: creates, expected=(201,), timed=False)
    ids = {server.name: created.server.ids, ceiling.name: created.ceiling.ids}
    for target in both:
        if len(ids[target.name]) != users:
            raise SystemExit(f"{target.name}: {len(ids[target.name])} of {users} users created")
    spread = list(range(0, users, max(1, users // 2000)))  # up to 2,000 distinct users
    after_load()

    each(
        "GET user by id",
        lambda t: [("GET", f"/scim/v2/Users/{ids[t.name][n]}", None) for n in spread],
    )
    each(
        "filter userName eq",
        lambda _: [("GET", _filter_path(f"user{n}@bench.example"), None) for n in spread],
    )
    each(
        "filter userName eq (miss)",
        lambda _: [("GET", _filter_path(f"nobody{n}@bench.example"), None) for n in spread],
    )
    deep = max(1, users - 99)
    each(
        f"list page startIndex={deep} count=100",
        lambda _: [("GET", f"/scim/v2/Users?startIndex={deep}&count=100", None)],
    )
    _cursor_scenario(run, server, ceiling, headers, args)
    patch_inactive = _body(
        {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    )
    each(
        "PATCH active=false",
        lambda t: [("PATCH", f"/scim/v2/Users/{ids[t.name][n]}", patch_inactive) for n in spread],
    )
    each(
        "PUT full user",
        lambda t: [
            ("PUT", f"/scim/v2/Users/{ids[t.name][n]}", _body(user_document(n, revision=1)))
            for n in spread
        ],
    )
    _group_scenarios(run, server, ceiling, headers, ids, args, after_load)


def _cursor_scenario(
    run: Run, server: Server, ceiling: Server, headers: dict[str, str], args: argparse.Namespace
) -> None:
    """RFC 9865 cursor paging, when this build advertises it: the page before the last. The
    ceiling's equivalent is the same keyset page by primary key (``pk > N-100 LIMIT 100``),
    without a COUNT (scim-server counts on a cursor walk's first page only)."""
    config = _get(server, headers, "/scim/v2/ServiceProviderConfig")
    pagination = config.get("pagination") or {}
    if not pagination.get("cursor"):
        run.add("cursor page near the end", None, None, "not supported by this build")
        return
    users, page_size = args.users, 100
    cursor, seen, last_cursor = "", 0, ""
    while True:
        page = _get(server, headers, f"/scim/v2/Users?cursor={cursor}&count={page_size}")
        seen += len(page.get("Resources", []))
        next_cursor = page.get("nextCursor")
        if not next_cursor or seen >= users - page_size:
            last_cursor = next_cursor or cursor
            break
        cursor = next_cursor
    paths = {
        server.name: f"/scim/v2/Users?cursor={last_cursor}&count={page_size}",
        ceiling.name: f"/scim/v2/Users?after={max(0, users - page_size)}&count={page_size}",
    }
    pair = drive_pair(
        server,
        ceiling,
        headers,
        lambda target: [("GET", paths[target.name], None)],
        rounds=args.rounds,
        clients=args.clients,
        seconds=args.seconds,
    )
    run.add_pair("cursor page near the end", pair)


def _group_scenarios(
    run: Run,
    server: Server,
    ceiling: Server,
    headers: dict[str, str],
    ids: dict[str, list[str]],
    args: argparse.Namespace,
    after_load: Callable[[], None],
) -> None:
    both = (server, ceiling)
    clients = args.clients

    def new_group(target: Server, name: str) -> str:
        connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
        body = _body({"schemas": [GROUP], "displayName": f"{name} {uuid.uuid4().hex[:6]}"})
        connection.request("POST", "/scim/v2/Groups", body=body, headers=headers)
        response = connection.getresponse()
        group_id = str(json.loads(response.read())["id"])
        connection.close()
        return group_id

    def patch(operations: list[dict[str, Any]]) -> bytes:
        return _body({"schemas": [PATCH_OP], "Operations": operations})

    def add(members: Sequence[str]) -> bytes:
        return patch([{"op": "add", "path": "members", "value": [{"value": m} for m in members]}])

    # Warm-up, not reported: every worker compiles and caches the statements of a membership
    # PATCH on its first ones, which would otherwise count against the empty group.
    for target in both:
        warm = f"/scim/v2/Groups/{new_group(target, 'Warm-up')}"
        spare = ids[target.name][-min(1600, len(ids[target.name])) :]
        warm_up = [("PATCH", warm, add(spare[i : i + 100])) for i in range(0, len(spare), 100)]
        drive(target, headers, warm_up, clients=clients, seconds=None, expected=(200, 204))

    group_ids = {target.name: new_group(target, "Department") for target in both}

    def group_path(target: Server, query: str = "") -> str:
        return f"/scim/v2/Groups/{group_ids[target.name]}{query}"

    def group_get(query: str) -> Callable[[Server], Sequence[Request]]:
        return lambda target: [("GET", group_path(target, query), None)]

    size = min(args.group_size, len(ids[server.name]))
    batches: dict[str, list[Request]] = {}
    for target in both:
        members = ids[target.name][:size]
        batches[target.name] = [
            ("PATCH", group_path(target), add(members[start : start + 100]))
            for start in range(0, size, 100)
        ]
    # Okta and Entra push one group's membership one request after another
    added = [
        drive(t, headers, batches[t.name], clients=1, seconds=None, expected=(200, 204))
        for t in both
    ]
    run.add(f"group PATCH add 100 (to {size})", added[0], added[1])
    for name, outcome in zip(("server", "ceiling"), added, strict=True):
        timings = outcome.latencies_ms  # one client: in the order sent
        first, last = statistics.median(timings[:5]), statistics.median(timings[-5:])
        run.extra[f"group_add_{name}"] = {
            "first5_p50_ms": round(first, 2),
            "last5_p50_ms": round(last, 2),
            "growth_ratio": round(last / first, 2),
            "ms_in_order": timings,
        }
        batches_sent = len(timings)  # the group held 100 x i members before batch i
        print(
            f"    {name}: p50 of the first 5 batches (group of 0-{100 * min(4, batches_sent - 1)})"
            f" {first:.2f} ms, of the last 5 ({100 * max(0, batches_sent - 5)}"
            f"-{100 * (batches_sent - 1)}) {last:.2f} ms,"
            f" ratio {last / first:.2f}",
            flush=True,
        )

    after_load()  # the group's 10,000 memberships
    for scenario, query in (
        ("GET group excludedAttributes=members", "?excludedAttributes=members"),
        (f"GET group with all {size} members", ""),
    ):
        pair = drive_pair(
            server,
            ceiling,
            headers,
            group_get(query),
            rounds=args.rounds,
            clients=clients,
            seconds=args.seconds,
        )
        run.add_pair(scenario, pair)

    removes = min(200, size // 4)
    for scenario, make in (
        (
            'group PATCH remove members[value eq "..."]',
            lambda m: [{"op": "remove", "path": f'members[value eq "{m}"]'}],
        ),
        (
            "group PATCH remove value array (Entra)",
            lambda m: [{"op": "remove", "path": "members", "value": [{"value": m}]}],
        ),
    ):
        offset = 0 if "eq" in scenario else removes
        outcomes = [
            drive(
                t,
                headers,
                [
                    ("PATCH", group_path(t), patch(make(m)))
                    for m in ids[t.name][offset : offset + removes]
                ],
                clients=1,
                seconds=None,
                expected=(200, 204),
            )
            for t in both
        ]
        run.add(scenario, outcomes[0], outcomes[1])


# -- targets, table, JSON -------------------------------------------------------------------------


def _row(run: Run, prefix: str) -> Row:
    return next(row for row in run.rows if row.scenario.startswith(prefix))


def targets(run: Run) -> list[tuple[str, str, bool]]:
    """Issue #7's targets, judged on this run: (target, measured, met)."""
    checks: list[tuple[str, str, bool]] = []

    def ratio_at_least(prefix: str, bound: float) -> None:
        row = _row(run, prefix)
        ratio = row.ratio or 0.0
        checks.append((f"{row.scenario} >= {bound}x ceiling", f"{ratio}x", ratio >= bound))

    ratio_at_least("GET user by id", 0.8)
    ratio_at_least("filter userName eq", 0.8)
    ratio_at_least("list page", 0.8)
    ratio_at_least("create user", 0.6)
    ratio_at_least("PATCH active", 0.6)
    ratio_at_least("PUT full", 0.6)
    growth = run.extra["group_add_server"]
    checks.append(
        (
            "group add 100 on a full group: p50 <= 10 ms",
            f"{growth['last5_p50_ms']} ms",
            growth["last5_p50_ms"] <= 10,
        )
    )
    checks.append(
        (
            "... and <= 1.5x the same on an empty group",
            f"{growth['growth_ratio']}x",
            growth["growth_ratio"] <= 1.5,
        )
    )
    excluded = _row(run, "GET group excludedAttributes")
    get_user = _row(run, "GET user by id")
    assert excluded.server
    assert get_user.ceiling
    assert get_user.server
    versus = excluded.server["ops_per_s"] / get_user.ceiling["ops_per_s"]
    checks.append(
        (
            "GET group excludedAttributes=members >= 0.8x ceiling's GET user",
            f"{versus:.2f}x (vs scim-server's own GET user:"
            f" {excluded.server['ops_per_s'] / get_user.server['ops_per_s']:.2f}x)",
            versus >= 0.8,
        )
    )
    full = _row(run, "GET group with all")
    assert full.server
    checks.append(
        (
            f"{full.scenario} >= 10/s",
            f"{full.server['ops_per_s']}/s",
            full.server["ops_per_s"] >= 10,
        )
    )
    peak = run.extra["server_peak_total_rss_mib"]
    pss = run.extra["server_peak_total_pss_mib"]
    largest = run.extra["server_peak_process_rss_mib"]
    checks.append(
        (
            "server peak memory <= 200 MiB (sum of RSS of master + workers)",
            f"{peak} MiB RSS (shared pages counted once: {pss} MiB PSS;"
            f" largest process {largest} MiB)",
            peak <= 200,
        )
    )
    errors = sum(
        (row.server or {}).get("errors", 0) + (row.ceiling or {}).get("errors", 0)
        for row in run.rows
    )
    checks.append(("no errors", str(errors), errors == 0))
    return checks


def print_table(run: Run) -> None:
    print(f"\n## {run.database}, {run.users} users\n")
    print(
        "| scenario | ops/s | p50 ms | p99 ms | errors | server CPU ms/op"
        " | PostgreSQL CPU ms/op | client CPU ms/op"
        " | ceiling ops/s | ceiling p50 ms | ceiling CPU ms/op | ratio | rounds | CPU ratio |"
    )
    print("| --- |" + " ---: |" * 13)
    for row in run.rows:
        s, c = row.server, row.ceiling
        if s is None:
            print(f"| {row.scenario} | {row.note} |" + " |" * 12)
            continue
        # on SQLite the database is inside the server's processes; a local PostgreSQL only idles
        database = s["database_cpu_ms_per_op"] if run.database == "postgresql" else "-"
        spread = (
            f"{min(row.round_ratios):.2f}-{max(row.round_ratios):.2f}"
            if len(row.round_ratios) > 1
            else "-"
        )
        ceiling = (
            f"{c['ops_per_s']} | {c['p50_ms']} | {c['server_cpu_ms_per_op']}" if c else "- | - | -"
        )
        print(
            f"| {row.scenario} | {s['ops_per_s']} | {s['p50_ms']} | {s['p99_ms']} | {s['errors']}"
            f" | {s['server_cpu_ms_per_op']} | {database}"
            f" | {s['client_cpu_ms_per_op']} | {ceiling}"
            f" | {row.ratio if row.ratio is not None else '-'}"
            f" | {spread} | {row.cpu_ratio if row.cpu_ratio is not None else '-'} |"
        )
    print()
    for target, measured, met in targets(run):
        print(f"- {'MET    ' if met else 'NOT MET'} {target}: {measured}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=None, help="users to create (10,000)")
    parser.add_argument("--seconds", type=float, default=None, help="per timed scenario (8)")
    parser.add_argument("--quick", action="store_true", help="1,000 users, 2 s scenarios")
    parser.add_argument("--clients", type=int, default=8, help="client processes (8)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="alternating rounds per scenario, server and ceiling (4; 2 with --quick)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, both servers")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--group-size", type=int, default=10_000, help="members of the group")
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL (admin URL)")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench/results/load.json", help="output file"
    )
    args = parser.parse_args()
    args.users = args.users or (1_000 if args.quick else 10_000)
    args.seconds = args.seconds or (2.0 if args.quick else 8.0)
    args.rounds = max(1, args.rounds or (2 if args.quick else 4))
    args.group_size = min(args.group_size, args.users)

    print(
        f"scim-server load benchmark: {args.users} users, {args.seconds:g} s per timed scenario"
        f" in {args.rounds} alternating rounds,"
        f" {args.clients} client processes, gunicorn {args.workers} workers x {args.threads}"
        f" threads; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="scim-load-") as folder:
        workdir = Path(folder)
        if not args.skip_sqlite:
            print("[sqlite]", flush=True)
            runs.append(benchmark(f"sqlite:///{workdir / 'scim.db'}", "sqlite", args, workdir))
        if args.postgres:
            print("[postgresql]", flush=True)
            with postgres_database(args.postgres, "scim_load") as url:
                runs.append(benchmark(url, "postgresql", args, workdir))
    for run in runs:
        print_table(run)
    document = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "runs": [
            {**asdict(run), "targets": [list(check) for check in targets(run)]} for run in runs
        ],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=1))
    print(f"\nJSON: {args.json}")
    return 0 if runs and all(all(check[2] for check in targets(run)) for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
