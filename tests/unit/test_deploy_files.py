"""The deployment files of ``deploy/`` start the server this checkout builds.

They are not run by the suite (no container runtime or cluster in CI), so what can drift is
checked here: every ``scim-server`` command they run must parse with today's CLI, and the port,
the user and the probe paths must agree between the image, compose, Kubernetes and systemd.
"""

from __future__ import annotations

import json
import re
import shlex
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
    assert context.info_name in {"init", "serve"}, where
    if context.info_name == "serve":
        host = context.params["host"]
        assert context.params["port"] == PORT, where
        # in a container the port must be reachable from outside; on a host, only the local proxy
        assert host == ("127.0.0.1" if where.startswith("systemd") else "0.0.0.0"), where


def test_a_renamed_option_would_be_caught() -> None:
    with pytest.raises(click.UsageError):
        _parse(["serve", "--listen", "0.0.0.0"])
    with pytest.raises(AssertionError):
        _parse(["migrate"])


def test_the_image_the_pods_and_compose_agree_on_port_and_user() -> None:
    docker = _dockerfile()
    assert docker["EXPOSE"] == [str(PORT)]
    assert re.search(rf"--uid {IMAGE_USER} --gid {IMAGE_USER}", (DEPLOY / "Dockerfile").read_text())
    pod = _deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == IMAGE_USER
    assert pod["securityContext"]["runAsGroup"] == IMAGE_USER
    (server,) = pod["containers"]
    assert server["ports"] == [{"name": "http", "containerPort": PORT}]
    (published,) = _compose()["services"]["scim-server"]["ports"]
    assert published.endswith(f":{PORT}")
    assert published.startswith("127.0.0.1:"), "compose publishes for a local TLS proxy only"


def test_the_probes_ask_the_servers_health_endpoints(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'probe.db'}"))
    routes = app.url_map.bind("localhost")
    (server,) = _deployment()["spec"]["template"]["spec"]["containers"]
    probed = [
        server["readinessProbe"]["httpGet"]["path"],
        server["livenessProbe"]["httpGet"]["path"],
    ]
    compose_check = " ".join(_compose()["services"]["scim-server"]["healthcheck"]["test"])
    probed += re.findall(r"127\.0\.0\.1:\d+(/\w+)", compose_check)
    probed += re.findall(r"127\.0\.0\.1:\d+(/\w+)", " ".join(_dockerfile()["HEALTHCHECK"]))
    assert sorted(set(probed)) == ["/healthz", "/readyz"]
    for path in probed:
        endpoint, _ = routes.match(path, method="GET")
        assert endpoint.startswith("health."), path


def test_graceful_stop_outlasts_gunicorns_graceful_timeout() -> None:
    text = (DEPLOY / "gunicorn.conf.py").read_text()
    setting = re.search(r"^graceful_timeout = (\d+)$", text, re.MULTILINE)
    assert setting is not None
    graceful = int(setting[1])
    assert _deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > graceful
    assert int(_systemd()["TimeoutStopSec"]) > graceful
