"""The README is how an operator learns the configuration, the CLI and the admin API: its
configuration table must name every environment variable the server reads, none it does not,
and the defaults the code applies; its CLI reference and Admin API table every command and
endpoint there is, and no other."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click

from scim_server.app import create_app
from scim_server.cli import main
from scim_server.config import Settings

ROOT = Path(__file__).resolve().parents[2]
# gunicorn.conf.py sets these for itself, across a reload (kill -HUP), and ignores values set
# from outside (tests/unit/test_deploy_files.py): not an operator's configuration
INTERNAL = {"SCIM_SERVER_METRICS_DIR_READY", "SCIM_SERVER_OWN_METRICS_DIR"}
# read by gunicorn itself, not by our code
GUNICORNS_OWN = {"GUNICORN_CMD_ARGS"}


def _table() -> dict[str, str]:
    """variable -> the text of its default column."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| ([^|]*) \|", section, re.MULTILINE)
    assert rows, "README has no configuration table"
    names = [name for name, _ in rows]
    assert len(names) == len(set(names)), "a variable listed twice"
    return {name: default.strip() for name, default in rows}


def _read_by_the_code() -> set[str]:
    """Environment variable names as whole string literals in the server and its gunicorn file
    (``env.get("SCIM_X")``, ``_int(env, "SCIM_X", ...)``, ``os.environ.get("X")``)."""
    files = [*sorted((ROOT / "scim_server").rglob("*.py")), ROOT / "deploy" / "gunicorn.conf.py"]
    names: set[str] = set()
    for path in files:
        text = path.read_text()
        names |= set(re.findall(r"""["']((?:SCIM|PROMETHEUS)_[A-Z0-9_]+)["']""", text))
    # a constant, not a variable: scim_server.http.errors.SCIM_CONTENT_TYPE is never quoted
    return names - INTERNAL


def test_every_variable_the_server_reads_is_in_the_readme() -> None:
    missing = _read_by_the_code() - set(_table())
    assert not missing, f"read by the server, not in README's configuration table: {missing}"


def test_the_readme_lists_no_variable_that_nothing_reads() -> None:
    stale = set(_table()) - _read_by_the_code() - GUNICORNS_OWN
    assert not stale, f"in README's configuration table, read by nothing: {stale}"


def test_the_readme_states_the_defaults_the_code_applies() -> None:
    table = _table()
    checked = 0
    for field in dataclasses.fields(Settings):
        name = f"SCIM_{field.name.upper()}"
        if name not in table:
            continue
        default = field.default
        cell = table[name]
        if isinstance(default, bool):
            assert cell == f"`{str(default).lower()}`", (name, cell, default)
        elif isinstance(default, int):
            assert cell == f"`{default}`", (name, cell, default)
        elif isinstance(default, str):
            assert cell.startswith(f"`{default}`"), (name, cell, default)
        else:  # unset: the cell says what happens instead, never a value
            assert default is None, name
            assert not re.fullmatch(r"`[^`]*`", cell), (name, cell)
        checked += 1
    assert checked >= 20, checked
    gunicorn_file = (ROOT / "deploy" / "gunicorn.conf.py").read_text()
    for name in ("SCIM_WORKERS", "SCIM_THREADS"):
        code = re.search(rf'os\.environ\.get\("{name}", "(\d+)"\)', gunicorn_file)
        assert code is not None, name
        assert table[name] == f"`{code[1]}`", (name, table[name])


def _commands(command: click.Command, prefix: tuple[str, ...] = ()) -> set[str]:
    if not isinstance(command, click.Group):
        return {" ".join(prefix)}
    found: set[str] = set()
    for name, sub in command.commands.items():
        if not sub.hidden:  # an alias (``user`` for ``users``), named beside its command
            found |= _commands(sub, (*prefix, name))
    return found


def test_the_cli_reference_shows_every_command_and_only_those() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## CLI reference\n", 1)[1].split("\n## ", 1)[0]
    documented = {
        match[1].strip()
        for match in re.finditer(r"^scim-server ((?:[a-z][a-z-]* ?)+)", section, re.MULTILINE)
    }
    commands = _commands(main)
    assert len(commands) > 30, commands
    assert not commands - documented, f"not in README's CLI reference: {commands - documented}"
    assert not documented - commands, (
        f"in README's CLI reference, no such command: {documented - commands}"
    )


def test_the_admin_api_table_shows_every_endpoint_and_only_those() -> None:
    app = create_app(Settings(database_url="sqlite://"))
    served = {
        (method, re.sub(r"<[^>]+>", "ID", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/admin/v1/")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Admin API\n", 1)[1].split("\n## ", 1)[0]
    documented = {
        # `GET /admin/v1/tokens[?all=true]`, `DELETE /admin/v1/roles/NAME`
        (match[1], re.sub(r"/(ID|NAME)(?=/|$)", "/ID", match[2]))
        for match in re.finditer(
            r"^\| `(GET|POST|PUT|PATCH|DELETE) (/admin/v1/[^`\[]*)(?:\[[^\]]*\])?` \|",
            section,
            re.MULTILINE,
        )
    }
    assert len(served) > 20, served
    assert not served - documented, f"not in README's Admin API table: {served - documented}"
    assert not documented - served, (
        f"in README's Admin API table, not served: {documented - served}"
    )
