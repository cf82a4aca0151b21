"""Through a real gunicorn process: every line the server writes is one JSON object on stdout
(DESIGN §8), gunicorn's own lines included, and a request's lines carry its request id: the
access line with the request's facts as fields, and any line the app wrote while serving it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scim_server.store.db import Database
from tests.conftest import make_tenant
from tests.gunicorn.server import Server, call, serve

# What is tested here is gunicorn's and the HTTP layer's, the same whatever the database (the
# database's part of it runs on both in tests/api): one database, for a faster suite.
pytestmark = [
    pytest.mark.gunicorn,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

#: A rate limit whose storage cannot be reached: the app logs a warning while serving a request.
UNREACHABLE = {"SCIM_RATE_LIMIT": "100/second", "SCIM_REDIS_URL": "redis://127.0.0.1:1/0"}


@pytest.fixture(scope="module")
def server(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("gunicorn-logs")
    with serve(
        database.url, workers=1, log_path=folder / "server.log", environment=UNREACHABLE
    ) as server:
        yield server


def lines_of(server: Server, request_id: str) -> list[dict[str, Any]]:
    """Every line of the log, parsed (each must be JSON); those of ``request_id``."""
    for _ in range(50):  # the access line is written after the response
        parsed = [json.loads(line) for line in server.log_path.read_text().splitlines() if line]
        mine = [line for line in parsed if line.get("request_id") == request_id]
        if any(line["logger"] == "gunicorn.access" for line in mine):
            return mine
        time.sleep(0.1)
    raise AssertionError(f"no access line for {request_id}:\n{server.log()}")


def test_every_line_is_json_and_a_request_s_lines_carry_its_id(
    database: Database, server: Server
) -> None:
    tenant = make_tenant(database, "logs")
    reply = call(
        "GET",
        f"{server.base_url}/scim/v2/Users?filter=userName%20eq%20%22a%40b.c%22",
        tenant.token,
        headers={"X-Request-Id": "logs-1", "User-Agent": "Okta SCIM Client 1.0.0"},
    )
    assert reply.status == 200, reply.body
    mine = lines_of(server, "logs-1")
    (access,) = [line for line in mine if line["logger"] == "gunicorn.access"]
    assert {key: access[key] for key in ("level", "method", "path", "status", "user_agent")} == {
        "level": "INFO",
        "method": "GET",
        "path": "/scim/v2/Users",
        "status": 200,
        "user_agent": "Okta SCIM Client 1.0.0",
    }
    assert access["bytes"] > 0
    assert isinstance(access["duration_seconds"], float)
    assert access["time"].endswith("+00:00")
    (warning,) = [line for line in mine if line["logger"] == "scim_server.rate_limit"]
    assert warning["level"] == "WARNING"
    assert warning["message"].startswith("rate limit not enforced: its storage failed")
    assert tenant.token not in server.log_path.read_text()


def test_a_query_string_never_reaches_the_log(database: Database, server: Server) -> None:
    tenant = make_tenant(database, "query")
    leaked = call(
        "GET",
        f"{server.base_url}/scim/v2/Users?access_token={tenant.token}&filter=userName%20eq%20%22x%22",
        "",
        headers={"X-Request-Id": "logs-query"},
    )
    assert leaked.status == 401
    (access,) = [
        line for line in lines_of(server, "logs-query") if line["logger"] == "gunicorn.access"
    ]
    assert access["path"] == "/scim/v2/Users"
    assert '"GET /scim/v2/Users HTTP/1.1" 401' in access["message"]
    assert tenant.token not in server.log_path.read_text()
    assert "userName" not in access["message"]
