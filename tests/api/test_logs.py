"""The app's log lines (DESIGN §8): JSON by default, plain text with ``SCIM_LOG_FORMAT=text``,
each with the id of the request it was written for; a bad setting stops the server at start."""

from __future__ import annotations

import json

import pytest

from scim_server.app import create_app
from scim_server.config import ConfigError, Settings
from scim_server.store.db import Database
from tests.conftest import Api, Tenant

#: The rate limit's storage cannot be reached: serving a request logs a warning.
UNREACHABLE = {"rate_limit": "100/second", "redis_url": "redis://127.0.0.1:1/0"}


def _warned(database: Database, tenant: Tenant, log_format: str) -> Api:
    settings = Settings(database_url=database.url, log_format=log_format, **UNREACHABLE)
    api = Api(create_app(settings, database=database).test_client(), tenant)
    assert api.get("/Users", headers={"X-Request-Id": f"rid-{log_format}"}).status_code == 200
    return api


def test_json_lines_carry_the_request_id(
    database: Database, tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    _warned(database, tenant, "json")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (warning,) = [line for line in lines if line.get("logger") == "scim_server.rate_limit"]
    assert warning["level"] == "WARNING"
    assert warning["request_id"] == "rid-json"
    assert warning["message"].startswith("rate limit not enforced: its storage failed")
    assert tenant.token not in json.dumps(lines)


def test_text_lines_for_a_terminal(
    database: Database, tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    _warned(database, tenant, "text")
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "rate limit" in line]
    assert " WARNING scim_server.rate_limit [rid-text] rate limit not enforced: " in line


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SCIM_LOG_FORMAT", "xml", "SCIM_LOG_FORMAT must be json or text, got 'xml'"),
        ("SCIM_LOG_LEVEL", "loud", "SCIM_LOG_LEVEL must be one of debug, info, warning"),
    ],
)
def test_a_bad_log_setting_is_refused(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({variable: value})


def test_text_is_accepted_in_any_case() -> None:
    settings = Settings.from_env({"SCIM_LOG_FORMAT": " Text ", "SCIM_LOG_LEVEL": "debug"})
    assert (settings.log_format, settings.log_level) == ("text", "DEBUG")
