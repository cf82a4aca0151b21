"""The external compliance suite scim2-tester, run in-process against the app (WSGI engine)."""

from __future__ import annotations

from flask import Flask
from scim2_client.engines.wsgi import WSGISCIMClient
from scim2_tester import Status, check_server

from tests.conftest import Tenant

NOT_ACCEPTED = {Status.ERROR, Status.CRITICAL, Status.SKIPPED}


def test_scim2_tester_discovery_and_user_checks_all_pass(app: Flask, tenant: Tenant) -> None:
    client = WSGISCIMClient(
        app,
        base_url="http://localhost/scim/v2",
        headers={"Authorization": f"Bearer {tenant.token}"},
    )
    results = check_server(client, resource_types=["User"])
    assert results, "scim2-tester ran no check"
    failures = [
        f"{r.status.name} {r.resource_type or '-'} {r.title}: {r.reason}"
        for r in results
        if r.status in NOT_ACCEPTED
    ]
    assert not failures, "\n".join(failures)
    titles = {r.title for r in results}
    # the run really exercised the User resource, not just discovery
    for check in ("check_add_attribute", "check_replace_attribute", "check_remove_attribute"):
        assert check in titles, sorted(titles)
    assert any(r.resource_type == "User" for r in results)
