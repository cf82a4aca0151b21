"""GET user by id on scim-server and the ceiling under several gunicorn settings (issue #7).

    .venv/bin/python bench/get_settings.py                     # 1,1,1  1,4,4  2,4,8
    .venv/bin/python bench/get_settings.py 2,1,8 2,2,8 2,4,8   # WORKERS,THREADS,CLIENTS ...

Asks whether the gap to the ceiling depends on how requests are served (threads contending for
the GIL, several workers sharing two cores) or only on the work each request does: for each
setting both servers are started as ``bench/load.py`` starts them, get ``--users`` users each,
and answer GETs by id in ``--rounds`` alternating rounds of ``--seconds``. Prints ops/s and
server CPU per GET of every round, and the median ratio.

While a setting runs, ``py-spy record -p PID --nonblocking -r 1000 -f raw -o FILE`` on a worker
(``--hold`` keeps the servers up that long after the rounds) gives where each one's time goes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from load import (
    SCIM,
    _body,
    _children,
    _gunicorn,
    ceiling_command,
    drive,
    serve_command,
    user_document,
)
from support import provision


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("settings", nargs="*", default=["1,1,1", "1,4,4", "2,4,8"])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="per round and server")
    parser.add_argument("--hold", type=float, default=0.0, help="seconds to keep serving after")
    args = parser.parse_args()
    for setting in args.settings:
        workers, threads, clients = (int(part) for part in setting.split(","))
        workdir = Path(tempfile.mkdtemp(prefix="scim-get-settings-"))
        env = {
            **os.environ,
            "SCIM_DATABASE_URL": f"sqlite:///{workdir / 'scim.db'}",
            "SCIM_WORKERS": str(workers),
            "SCIM_THREADS": str(threads),
            "SCIM_LOG_LEVEL": "warning",
            "CEILING_DATABASE_URL": f"sqlite:///{workdir / 'ceiling.db'}",
        }
        token = provision(env, org_name="Settings", connection="Entra")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM, "Accept": SCIM}

        with (
            _gunicorn("scim-server", serve_command, env, workdir / "server.log") as ours,
            _gunicorn("ceiling", ceiling_command, env, workdir / "ceiling.log") as theirs,
        ):
            creates = [
                ("POST", "/scim/v2/Users", _body(user_document(n))) for n in range(args.users)
            ]
            gets = {}
            for server in (ours, theirs):
                made = drive(
                    server,
                    headers,
                    creates,
                    clients=4,
                    seconds=None,
                    expected=(201,),
                    collect_ids=True,
                )
                gets[server.name] = [("GET", f"/scim/v2/Users/{i}", None) for i in made.ids]
            rows: dict[str, list[str]] = {ours.name: [], theirs.name: []}
            ratios = []
            for number in range(args.rounds):
                rates = {}
                for server in (ours, theirs) if number % 2 == 0 else (theirs, ours):
                    outcome = drive(
                        server, headers, gets[server.name], clients=clients, seconds=args.seconds
                    )
                    if outcome.errors:
                        raise SystemExit(f"{server.name}: {outcome.first_error}")
                    rates[server.name] = outcome.ops_per_s
                    rows[server.name].append(
                        f"{outcome.ops_per_s:6.0f}/s {outcome.server_cpu_ms_per_op:5.2f} ms"
                    )
                ratios.append(rates[ours.name] / rates[theirs.name])
            print(f"workers={workers} threads={threads} clients={clients}")
            for name, cells in rows.items():
                print(f"  {name:12} " + " | ".join(cells))
            spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
            print(f"  ratio {statistics.median(ratios):.2f} (rounds {spread})")
            if args.hold:
                print(
                    f"  worker pids: scim-server {_children(ours.process.pid)},"
                    f" ceiling {_children(theirs.process.pid)}",
                    flush=True,
                )
                time.sleep(args.hold)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
