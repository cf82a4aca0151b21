"""``binary`` attributes hold base64 (RFC 7643 §2.3.6, RFC 4648 §4): anything else is a 400
``invalidValue`` naming the attribute, on POST, PUT, PATCH and in /Bulk, and writes nothing but its
event. A valid value is stored and returned exactly as sent.

Found by fuzzing: ``"x509Certificates": [{"value": "not base64!!"}]`` was stored (201).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from scim_server.scim import validate
from scim_server.store.db import Database
from tests.api.test_bulk import bulk, post_user, send, slot_error
from tests.api.test_users_errors import assert_error
from tests.conftest import USER_SCHEMA, Api, patch_body, store_snapshot

#: Bytes standing for a DER certificate, as base64 and as a PEM body (64 characters a line).
DER = bytes(range(256))
ONE_LINE = base64.b64encode(DER).decode()
PEM_BODY = "\n".join(ONE_LINE[i : i + 64] for i in range(0, len(ONE_LINE), 64))

NOT_BASE64 = [
    pytest.param("not base64!!", id="not the alphabet"),
    pytest.param("PDw_Pz8-", id="base64url"),
    pytest.param("QUJ", id="unpadded 3"),
    pytest.param("QUJDRA", id="unpadded 6"),
    pytest.param("QU=D", id="padding inside"),
    pytest.param("QQ==QQ==", id="padding then more"),
    pytest.param("QUJD====", id="too much padding"),
    pytest.param("Q===", id="three pads"),
    pytest.param("QUJD\u00e9", id="non-ASCII"),
]

BASE64 = [
    pytest.param("QUJD", id="no padding needed"),
    pytest.param("QUI=", id="one pad"),
    pytest.param("QQ==", id="two pads"),
    pytest.param(PEM_BODY, id="PEM body with line breaks"),
    pytest.param(" QUJD\r\nQUI=\t", id="spaces CR LF tab"),
    pytest.param(ONE_LINE, id="one line"),
]


def _certificates(value: str) -> dict[str, Any]:
    return {"x509Certificates": [{"value": value, "type": "signing"}]}


@pytest.fixture
def seeded(api: Api) -> dict[str, Any]:
    return api.create_user("cert@example.com", **_certificates("QUJD"))


def _assert_not_base64(response: Any) -> None:
    assert_error(response, 400, "invalidValue", '"x509Certificates.value"', "base64")


@pytest.mark.parametrize("value", NOT_BASE64)
def test_a_binary_value_that_is_not_base64_is_invalid_value_and_writes_nothing(
    api: Api, database: Database, seeded: dict[str, Any], value: str
) -> None:
    before = store_snapshot(database, api.tenant.org_id)
    _assert_not_base64(
        api.post(
            "/Users", {"schemas": [USER_SCHEMA], "userName": "x@e.com", **_certificates(value)}
        )
    )
    _assert_not_base64(
        api.put(
            f"/Users/{seeded['id']}",
            {"schemas": [USER_SCHEMA], "userName": "cert@example.com", **_certificates(value)},
        )
    )
    for operation in (
        {"op": "add", "path": "x509Certificates", "value": [{"value": value}]},
        {"op": "replace", "value": _certificates(value)},
        {"op": "replace", "path": 'x509Certificates[type eq "signing"].value', "value": value},
        {"op": "add", "path": 'x509Certificates[type eq "other"].value', "value": value},
    ):
        _assert_not_base64(api.patch(f"/Users/{seeded['id']}", patch_body(operation)))
    results = send(api, bulk(post_user("b", "bulk@example.com", **_certificates(value))))
    slot_error(results[0], 400, "invalidValue", '"x509Certificates.value"', "base64")
    assert store_snapshot(database, api.tenant.org_id) == before


def test_the_refusal_says_what_is_wrong(api: Api) -> None:
    def refusal(value: str) -> str:
        body = {"schemas": [USER_SCHEMA], "userName": "x@e.com", **_certificates(value)}
        response = api.post("/Users", body)
        _assert_not_base64(response)
        detail: str = response.get_json()["detail"]
        return detail

    assert "character 11 is not in the base64 alphabet" in refusal("not base64!!")
    assert "base64url" in refusal("PDw_Pz8-")
    assert "multiple of 4" in refusal("QUJDRA")
    assert "padding" in refusal("QU=D")
    # the value itself is not quoted: the attribute and the rule say what to fix
    assert "not base64!!" not in refusal("not base64!!")


@pytest.mark.parametrize("value", BASE64)
def test_a_base64_value_is_stored_and_returned_exactly_as_sent(
    api: Api, seeded: dict[str, Any], value: str
) -> None:
    created = api.create_user("new@example.com", **_certificates(value))
    assert created["x509Certificates"] == [{"value": value, "type": "signing"}]
    assert api.get(f"/Users/{created['id']}").get_json()["x509Certificates"][0]["value"] == value
    response = api.patch(
        f"/Users/{seeded['id']}",
        patch_body(
            {"op": "replace", "path": 'x509Certificates[type eq "signing"].value', "value": value}
        ),
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["x509Certificates"] == [{"value": value, "type": "signing"}]


def test_a_value_stored_before_the_rule_does_not_block_later_writes(
    api: Api, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user an older server stored with a value that is not base64 can still be deactivated
    and re-sent whole (Okta's PUT echoes it): values already stored are not re-checked, as for
    roles. A new value that is not base64 is refused."""
    with monkeypatch.context() as older_server:
        older_server.setattr(validate, "base64_problem", lambda text: None)
        user = api.create_user("old@example.com", **_certificates("not base64!!"))
    response = api.patch(
        f"/Users/{user['id']}", patch_body({"op": "replace", "value": {"active": False}})
    )
    assert response.status_code == 200, response.get_json()
    body = {"schemas": [USER_SCHEMA], "userName": "old@example.com", "displayName": "Old"}
    response = api.put(f"/Users/{user['id']}", {**body, **_certificates("not base64!!")})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["x509Certificates"][0]["value"] == "not base64!!"
    before = store_snapshot(database, api.tenant.org_id)
    _assert_not_base64(api.put(f"/Users/{user['id']}", {**body, **_certificates("still not!!")}))
    assert store_snapshot(database, api.tenant.org_id) == before


def test_a_certificate_of_real_size_is_stored_and_can_be_filtered_on(api: Api) -> None:
    """A DER certificate is 1-2 KB, its base64 longer than an index entry holds: binary values
    are not indexed, and a filter reads them from the element instead."""
    pem = "\n".join(
        base64.b64encode(bytes(range(256)) * 6).decode()[i : i + 64] for i in range(0, 2048, 64)
    )
    assert len(pem) > 2000
    created = api.post(
        "/Users", {"schemas": [USER_SCHEMA], "userName": "big@example.com", **_certificates(pem)}
    )
    assert created.status_code == 201, created.get_json()
    user = created.get_json()
    assert user["x509Certificates"] == [{"value": pem, "type": "signing"}]
    other = api.create_user("other@example.com", **_certificates("QUJD"))
    for text, found in (
        (f'x509Certificates.value eq "{pem[:64]}"', []),
        ('x509Certificates.value eq "QUJD"', [other["id"]]),
        ('x509Certificates[value eq "QUJD" and type eq "signing"]', [other["id"]]),
        ("x509Certificates.value pr", sorted([user["id"], other["id"]])),
        (f'x509Certificates.value sw "{pem[:20]}"', [user["id"]]),
    ):
        listed = api.list_users(filter=text)
        assert sorted(r["id"] for r in listed["Resources"]) == found, text
    sorted_by = api.get("/Users", query_string={"sortBy": "x509Certificates"})
    assert_error(sorted_by, 400, "invalidFilter", "binary")
