"""Through a real gunicorn process: the server opens no gunicorn control socket.

gunicorn 25.1+ opens one by default at one path per user (``$XDG_RUNTIME_DIR/gunicorn.ctl`` or
``~/.gunicorn/gunicorn.ctl``): a second server of the same user took the path over, and the
first to stop removed the other's socket. The server is managed with signals instead
(README, Deploying)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gunicorn.server import call, run_cli, serve

pytestmark = pytest.mark.gunicorn


def test_two_servers_of_one_user_open_no_control_socket(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'scim.db'}"
    assert run_cli(url, "init").returncode == 0
    runtime = tmp_path / "run"
    runtime.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    environment = {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    with (
        serve(url, workers=1, log_path=tmp_path / "a.log", environment=environment) as first,
        serve(url, workers=1, log_path=tmp_path / "b.log", environment=environment) as second,
    ):
        for server in (first, second):
            assert call("GET", f"{server.base_url}/healthz", "").status == 200
        assert sorted(runtime.rglob("*")) == []
        assert sorted(home.rglob("*")) == []
        assert "control socket" not in (first.log() + second.log()).lower()
