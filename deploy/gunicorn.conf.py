"""gunicorn settings for production (``scim-server serve``).

gthread workers keep connections alive and overlap database waits; on 2 cores about 2 workers
with 4 threads each. The app is loaded once in the master (preload) and each worker disposes the
inherited connection pool, so no database connection is ever shared between processes.
Every value can be overridden with the usual GUNICORN_CMD_ARGS or the CLI flags.
"""

import gc
import os
import shutil
import tempfile
from pathlib import Path

from scim_server.logs import gunicorn_logconfig


def _mine(value: str) -> str:
    """``value`` as this process (gunicorn's master) remembers it in its environment."""
    return f"{os.getpid()}:{value}"


def _remembered(name: str) -> str | None:
    """What this process set ``name`` to with :func:`_mine`, or None. The environment is how a
    reload (kill -HUP: gunicorn reads this file again, in the same process) knows what the first
    reading did; the process id keeps a value that came from outside (an operator's setting, a
    parent's environment) from being taken for it."""
    value = os.environ.get(name, "")
    mark = _mine("")
    return value[len(mark) :] if value.startswith(mark) else None


# /metrics adds up every worker's counts from files in this folder (prometheus_client's
# multiprocess mode). It must be set before the app (and prometheus_client) is loaded, and hold
# no counts of a previous run: a folder of our own, or the operator's, emptied, once (gunicorn
# reads this file again on a reload, kill -HUP, which must keep the counts).
_METRICS = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if not _METRICS:
    _METRICS = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
        prefix="scim-server-metrics-"
    )
    os.environ["SCIM_SERVER_OWN_METRICS_DIR"] = _mine(_METRICS)
if _remembered("SCIM_SERVER_METRICS_DIR_READY") != _METRICS:
    try:
        Path(_METRICS).mkdir(parents=True, exist_ok=True)
        for stale in Path(_METRICS).glob("*.db"):
            stale.unlink()
        _probe = Path(_METRICS) / ".scim-server-probe"
        _probe.write_bytes(bytes(1 << 16))  # room for a first counts file
        _probe.unlink()
    except OSError as error:
        raise SystemExit(
            f"PROMETHEUS_MULTIPROC_DIR={_METRICS}: cannot write there ({error}); the /metrics "
            "counts need a writable folder with a few MiB free"
        ) from None
    os.environ["SCIM_SERVER_METRICS_DIR_READY"] = _mine(_METRICS)

workers = int(os.environ.get("SCIM_WORKERS", "2"))
threads = int(os.environ.get("SCIM_THREADS", "4"))
# gthread, with the requests gunicorn refuses itself answered as SCIM errors, not HTML
worker_class = "scim_server.http.gunicorn_worker.ScimThreadWorker"
preload_app = True
# no control socket (gunicornc): gunicorn puts it at one path per user, so a second server of the
# same user takes it over and the first to stop removes the other's; signals manage the server
control_socket_disable = True
timeout = 60
graceful_timeout = 30
keepalive = 75
max_requests = 10_000
max_requests_jitter = 1_000
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("SCIM_LOG_LEVEL", "info").lower()
# gunicorn's lines in the app's format, on stdout (scim_server.logs; SCIM_LOG_FORMAT=json|text)
logconfig_dict = gunicorn_logconfig(loglevel, os.environ.get("SCIM_LOG_FORMAT", "json").lower())
# gunicorn's largest request line short of unlimited (its default, 4094 bytes, answered a GET
# with a filter of SCIM_MAX_FILTER_LENGTH characters with its own HTML 414); nginx's default
# header buffer is the same 8 KiB. Longer queries belong in POST /.search (RFC 7644 §3.4.3).
limit_request_line = 8190
# Which proxies are believed is SCIM_TRUSTED_PROXY_HOPS's to say (werkzeug's ProxyFix in the
# app), not gunicorn's: by default gunicorn takes X-Forwarded-Proto (and X-Forwarded-Ssl) from
# any peer on 127.0.0.1, so a local plain-HTTP proxy that passes a client's headers through
# would let that client claim HTTPS (the OAuth token endpoint takes secrets over HTTPS only)
forwarded_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}
# the path without its query string: a query can carry a token (?access_token=, which is
# refused, but the line would keep it) and filters carry people's addresses
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss rid=%({x-request-id}o)s'


def pre_fork(server, worker):  # type: ignore[no-untyped-def]
    """Keep the preloaded app's memory shared with the workers (issue #7).

    A fork shares the master's pages until someone writes to them, and CPython's cyclic garbage
    collector writes to the header of every object it examines: a worker's first full
    collection, or the master's own, would copy nearly every page of the preloaded heap.
    Frozen objects (the app, its modules, SQLAlchemy's mappers) are never examined again, in the
    master or in the workers; a collection first, so that garbage of the import is not frozen.
    Runs before every fork, so a worker respawned after ``max_requests`` shares as much.
    """
    gc.collect()
    gc.freeze()


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    from scim_server.wsgi import app

    app.extensions["scim_db"].engine.dispose(close=False)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """A worker's counts stay (counters are cumulative), folded into the archive files."""
    from scim_server.http.metrics import archive_dead_worker

    try:
        archive_dead_worker(os.environ["PROMETHEUS_MULTIPROC_DIR"], worker.pid)
    except OSError as error:  # the counts of one worker are lost; the server goes on
        server.log.error(
            "could not archive the /metrics counts of worker %s: %s", worker.pid, error
        )


def on_exit(server):  # type: ignore[no-untyped-def]
    """The metrics folder goes only when this server made it (never an operator's)."""
    own = _remembered("SCIM_SERVER_OWN_METRICS_DIR")
    if own and own == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(own, ignore_errors=True)
