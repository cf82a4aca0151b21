"""The deployment files of ``deploy/`` start the server this checkout builds.

They are not run by the suite (no container runtime or cluster in CI), so what can drift is
checked here: every ``scim-server`` command they run must parse with today's CLI, and the port,
the user and the probe paths must agree between the image, compose, Kubernetes and systemd.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from scim_server.app import create_app
from scim_server.cli import main
from scim_server.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
IMAGE_USER = 10001
PORT = 8000


def _dockerfile() -> dict[str, list[str]]:
    """The exec-form instructions of the final stage (``ENTRYPOINT``, ``CMD`` ...)."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    final = text.rsplit("\nFROM ", 1)[1]
    found: dict[str, list[str]] = {}
    for line in final.splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword == "HEALTHCHECK":
            found[keyword] = json.loads(rest.split(" CMD ", 1)[1])
        elif rest.startswith("["):
            found[keyword] = json.loads(rest)
        elif keyword in {"EXPOSE", "USER"}:
            found[keyword] = rest.split()
    return found


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return document


def _kubernetes() -> list[dict[str, Any]]:
    text = (DEPLOY / "kubernetes" / "scim-server.yaml").read_text()
    return [document for document in yaml.safe_load_all(text) if document]


def _deployment() -> dict[str, Any]:
    (deployment,) = [d for d in _kubernetes() if d["kind"] == "Deployment"]
    return deployment


def _systemd() -> dict[str, str]:
    settings: dict[str, str] = {}
    for line in (DEPLOY / "scim-server.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, value)
    return settings


def _invocations() -> dict[str, list[str]]:
    """Every scim-server command line of the deployment files, without the program name."""
    docker = _dockerfile()
    assert docker["ENTRYPOINT"] == ["scim-server"]
    found = {"Dockerfile CMD": docker["CMD"]}
    for name, service in _compose()["services"].items():
        if "command" in service:
            found[f"compose {name}"] = service["command"]
    pod = _deployment()["spec"]["template"]["spec"]
    for container in pod["initContainers"] + pod["containers"]:
        found[f"kubernetes {container['name']}"] = container["args"]
    for job in [d for d in _kubernetes() if d["kind"] == "CronJob"]:
        for container in job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]:
            found[f"kubernetes {job['metadata']['name']}"] = container["args"]
    unit = _systemd()
    for key in ("ExecStartPre", "ExecStart"):
        program, *args = shlex.split(unit[key])
        assert program == "/opt/scim-server/bin/scim-server"
        found[f"systemd {key}"] = args
    return found


def _parse(args: list[str]) -> click.Context:
    """Resolve ``args`` through the CLI's groups (which take no options of their own) and parse
    the command's options as click would, without running anything."""
    command: click.Command = main
    tokens = list(args)
    while isinstance(command, click.Group):
        name, *tokens = tokens
        sub = command.get_command(click.Context(command), name)
        assert sub is not None, f"no command {name!r}"
        command = sub
    return command.make_context(name, tokens)


@pytest.mark.parametrize("where", sorted(_invocations()))
def test_every_command_of_the_deployment_files_parses(where: str) -> None:
    args = _invocations()[where]
    context = _parse(args)
    assert context.info_name in {"init", "serve", "purge", "checkpoint"}, where
    if context.info_name == "purge":  # every organisation, each by its own retention period
        assert context.params["all_orgs"], where
        assert context.params["days"] is None, where
    if context.info_name == "checkpoint":  # every log, the system log included
        assert context.params["every"], where
    if context.info_name == "serve":
        host = context.params["host"]
        assert context.params["port"] == PORT, where
        # in a container the port must be reachable from outside; on a host, only the local proxy
        assert host == ("127.0.0.1" if where.startswith("systemd") else "0.0.0.0"), where


def _secrets_of(spec: dict[str, Any]) -> set[str]:
    return {
        source["secretRef"]["name"]
        for container in spec.get("initContainers", []) + spec["containers"]
        for source in container.get("envFrom", [])
        if "secretRef" in source
    }


def test_only_the_checkpoint_job_is_given_the_audit_signing_key() -> None:
    """The key that signs audit checkpoints must stay out of the server's reach: whoever takes
    a server pod could otherwise sign a rewritten log."""
    jobs = {
        job["metadata"]["name"]: job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        for job in _kubernetes()
        if job["kind"] == "CronJob"
    }
    assert "scim-server-audit-signing" in _secrets_of(jobs["scim-server-audit-checkpoint"])
    others = [_deployment()["spec"]["template"]["spec"]] + [
        spec for name, spec in jobs.items() if name != "scim-server-audit-checkpoint"
    ]
    assert all("scim-server-audit-signing" not in _secrets_of(spec) for spec in others)


def test_a_renamed_option_would_be_caught() -> None:
    with pytest.raises(click.UsageError):
        _parse(["serve", "--listen", "0.0.0.0"])
    with pytest.raises(AssertionError):
        _parse(["migrate"])


def test_the_image_the_pods_and_compose_agree_on_port_and_user() -> None:
    docker = _dockerfile()
    assert docker["EXPOSE"] == [str(PORT)]
    assert docker["USER"] == [f"{IMAGE_USER}:{IMAGE_USER}"], "the image runs as its own user"
    assert re.search(rf"--uid {IMAGE_USER} --gid {IMAGE_USER}", (DEPLOY / "Dockerfile").read_text())
    pod = _deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == IMAGE_USER
    assert pod["securityContext"]["runAsGroup"] == IMAGE_USER
    for container in pod["initContainers"] + pod["containers"]:
        hardened = container["securityContext"]
        assert hardened["readOnlyRootFilesystem"] is True, container["name"]
        assert hardened["allowPrivilegeEscalation"] is False, container["name"]
        assert hardened["capabilities"]["drop"] == ["ALL"], container["name"]
        mounts = container["volumeMounts"]
        assert {mount["mountPath"] for mount in mounts} == {"/tmp", "/var/lib/scim-server"}
        assert not any(mount.get("readOnly") for mount in mounts), "the server writes there"
    (server,) = pod["containers"]
    assert server["ports"] == [{"name": "http", "containerPort": PORT}]
    (published,) = _compose()["services"]["scim-server"]["ports"]
    assert published.endswith(f":{PORT}")
    assert published.startswith("127.0.0.1:"), "compose publishes for a local TLS proxy only"


def test_the_probes_ask_the_servers_health_endpoints_on_its_port(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'probe.db'}"))
    routes = app.url_map.bind("localhost")
    (server,) = _deployment()["spec"]["template"]["spec"]["containers"]
    probes = [server[probe]["httpGet"] for probe in ("startupProbe", "readinessProbe")]
    probes.append(server["livenessProbe"]["httpGet"])
    assert {probe["port"] for probe in probes} == {"http"}
    # the start waits for a current schema; afterwards an outage is the server's own 503
    assert [probe["path"] for probe in probes] == ["/readyz", "/healthz", "/healthz"]
    probed = [probe["path"] for probe in probes]
    for check in (
        " ".join(_compose()["services"]["scim-server"]["healthcheck"]["test"]),
        " ".join(_dockerfile()["HEALTHCHECK"]),
    ):
        urls = re.findall(r"http://127\.0\.0\.1:(\d+)(/\w+)", check)
        assert urls, check
        for port, path in urls:
            assert int(port) == PORT, check
            probed.append(path)
    for path in probed:
        endpoint, _ = routes.match(path, method="GET")
        assert endpoint.startswith("health."), path


def test_graceful_stop_outlasts_gunicorns_graceful_timeout() -> None:
    text = (DEPLOY / "gunicorn.conf.py").read_text()
    setting = re.search(r"^graceful_timeout = (\d+)$", text, re.MULTILINE)
    assert setting is not None
    graceful = int(setting[1])
    pod = _deployment()["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    pre_stop = server["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > graceful + int(pre_stop[1])
    assert int(_systemd()["TimeoutStopSec"]) > graceful
    compose_grace = _compose()["services"]["scim-server"]["stop_grace_period"]
    assert compose_grace.endswith("s")
    assert int(compose_grace[:-1]) > graceful, "compose's default of 10 s cuts requests"
    readme = (DEPLOY.parent / "README.md").read_text()
    servers = re.findall(r"^docker run (?:-d|--detach) .*$", readme, re.MULTILINE)
    assert servers, "the README shows how to run the server's container"
    for command in servers:
        timeout = re.search(r"--stop-timeout (\d+)", command)
        assert timeout is not None, command
        assert int(timeout[1]) > graceful, command


def test_the_nginx_front_passes_what_the_server_decides_on() -> None:
    """Checked by hand with nginx 1.22 (README, Deploying); what can drift is held here."""
    conf = (DEPLOY / "nginx.conf").read_text()
    assert re.search(rf"server 127\.0\.0\.1:{PORT};", conf), "the port the deploy files serve on"
    size = re.search(r"client_max_body_size (\d+)m;", conf)
    assert size is not None
    # a body over the server's limits must get the server's SCIM 413, not nginx's HTML one
    defaults = Settings(database_url="sqlite://")
    assert int(size[1]) * 1024 * 1024 > max(
        defaults.max_body_bytes, defaults.bulk_max_payload_bytes
    )
    # the one hop SCIM_TRUSTED_PROXY_HOPS=1 believes: replaced, never appended to
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in conf
    assert "$proxy_add_x_forwarded_for" not in conf
    for header in ("X-Forwarded-Proto $scheme", "X-Forwarded-Host $host"):
        assert f"proxy_set_header {header};" in conf
    # nginx's own errors become a SCIM 503 with Retry-After; the server's pass untouched
    assert "proxy_intercept_errors on" not in conf
    assert re.search(r"add_header Retry-After \d+ always;", conf)


# gunicorn.conf.py read as gunicorn reads it: once at start, again in the same process on a
# reload (kill -HUP); then gunicorn's on_exit hook.
_READ_TWICE_THEN_EXIT = """
import os, runpy, sys
from pathlib import Path

conf, stale_name = sys.argv[1], sys.argv[2]
settings = runpy.run_path(conf)
folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
print("stale kept" if (folder / stale_name).exists() else "stale emptied")
(folder / "counter_9.db").write_bytes(b"counts of this run")
settings = runpy.run_path(conf)
print("reload kept the counts" if (folder / "counter_9.db").exists() else "reload emptied")
settings["on_exit"](None)
print(f"{folder} " + ("kept" if folder.exists() else "removed"))
"""


def _read_gunicorn_conf(environment: dict[str, str], stale: str = "counter_1.db") -> list[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "PROMETHEUS_MULTIPROC_DIR" and not key.startswith("SCIM_SERVER_")
    }
    completed = subprocess.run(
        [sys.executable, "-c", _READ_TWICE_THEN_EXIT, str(DEPLOY / "gunicorn.conf.py"), stale],
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return completed.stdout.splitlines()


def test_the_metrics_folder_handshake_ignores_values_set_from_outside(tmp_path: Path) -> None:
    """gunicorn.conf.py remembers across a reload that it emptied the metrics folder, and
    whether the folder is its own to remove at exit, in two environment variables. An
    operator's (or a parent process's) values of them must change nothing: the folder is still
    emptied of a previous run's counts at start, and an operator's folder is never removed."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"counts of a previous run")
    outside = {
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "SCIM_SERVER_METRICS_DIR_READY": str(folder),
        "SCIM_SERVER_OWN_METRICS_DIR": str(folder),
    }
    assert _read_gunicorn_conf(outside) == [
        "stale emptied",
        "reload kept the counts",
        f"{folder} kept",
    ]
    # without a folder given, the server makes its own and removes it at exit
    lines = _read_gunicorn_conf({})
    assert lines[:2] == ["stale emptied", "reload kept the counts"]
    assert lines[2].endswith(" removed")
    assert "scim-server-metrics-" in lines[2]
