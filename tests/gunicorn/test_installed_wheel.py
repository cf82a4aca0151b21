"""The server as ``pip install`` or the container image installs it: from the wheel, not the
checkout.

``schemas/`` and ``deploy/gunicorn.conf.py`` live at the repository's root, outside the package;
a wheel that left them out installed a server whose ``serve`` failed at once and which could not
validate a user. The wheel is built as pip builds it, unpacked, and run from a folder where the
checkout cannot be imported.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.gunicorn.server import ROOT, call, run_cli, serve

pytestmark = pytest.mark.gunicorn

_NOT_SOURCE = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "*.db*")


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # from a copy of the checkout, without its own build/ folder
    source = tmp_path_factory.mktemp("source") / "scim-server"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    # what an earlier build in the same tree left: a schema since deleted must not ship
    stale = source / "build" / "lib" / "scim_server" / "_files" / "schemas" / "deleted.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(dist),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("scim_server-*.whl")
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def test_the_wheel_carries_the_schemas_and_the_gunicorn_settings(unpacked_wheel: Path) -> None:
    shipped = unpacked_wheel / "scim_server" / "_files"
    assert sorted(p.name for p in (shipped / "schemas").iterdir()) == sorted(
        p.name for p in (ROOT / "schemas").iterdir()
    )
    for document in (ROOT / "schemas").iterdir():
        assert (shipped / "schemas" / document.name).read_bytes() == document.read_bytes()
    assert (shipped / "deploy" / "gunicorn.conf.py").read_bytes() == (
        ROOT / "deploy" / "gunicorn.conf.py"
    ).read_bytes()


def test_an_installed_server_serves_and_validates_from_its_own_files(
    unpacked_wheel: Path, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'installed.db'}"
    elsewhere = {"PYTHONPATH": str(unpacked_wheel)}
    imported = subprocess.run(
        [sys.executable, "-c", "import scim_server; print(scim_server.__file__)"],
        env={"PYTHONPATH": str(unpacked_wheel)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.strip().startswith(str(unpacked_wheel))

    for args in (("init",), ("org", "create", "acme", "--allowed-domains", "acme.example")):
        completed = run_cli(database_url, *args, environment=elsewhere, cwd=tmp_path)
        assert completed.returncode == 0, completed.stdout + completed.stderr
    created = run_cli(
        database_url,
        *("connection", "create", "--org", "acme", "--name", "okta", "--json"),
        environment=elsewhere,
        cwd=tmp_path,
    )
    token = json.loads(created.stdout)["token"]

    with serve(
        database_url,
        workers=1,
        log_path=tmp_path / "server.log",
        environment=elsewhere,
        cwd=tmp_path,
    ) as server:
        schemas = call("GET", f"{server.base_url}/scim/v2/Schemas", token)
        assert schemas.status == 200, server.log()
        served = {schema["id"] for schema in schemas.body["Resources"]}
        assert {
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:core:2.0:Group",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        } <= served
        refused = call(
            "POST",
            f"{server.base_url}/scim/v2/Users",
            token,
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": 42},
        )
        assert refused.status == 400
        assert refused.body["scimType"] == "invalidValue"
        assert "userName" in refused.body["detail"]
        created_user = call(
            "POST",
            f"{server.base_url}/scim/v2/Users",
            token,
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "ada@acme.example",
                "name": {"givenName": "Ada", "familyName": "Lovelace"},
                "emails": [{"value": "ada@acme.example", "primary": True}],
            },
        )
        assert created_user.status == 201, created_user.body
