"""BulkRequest parsing, bulkId references and execution order (RFC 7644 §3.7, ``scim.bulk``)."""

from __future__ import annotations

from typing import Any

import pytest

from scim_server.scim.bulk import (
    BULK_REQUEST,
    BulkRequest,
    UnresolvedReference,
    execution_order,
    parse_bulk_request,
    substitute,
)
from scim_server.scim.errors import InvalidSyntax, PayloadTooLarge
from scim_server.scim.schema import default_registry

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def parse(body: Any, max_operations: int = 100) -> BulkRequest:
    return parse_bulk_request(body, registry=default_registry(), max_operations=max_operations)


def request(*operations: Any, **extra: Any) -> dict[str, Any]:
    return {"schemas": [BULK_REQUEST], "Operations": list(operations), **extra}


def post(bulk_id: str, path: str = "/Users", **data: Any) -> dict[str, Any]:
    if "manager" in data:
        data[ENTERPRISE] = {"manager": data.pop("manager")}
    return {"method": "POST", "path": path, "bulkId": bulk_id, "data": data}


def order_of(*operations: Any) -> list[str | None]:
    parsed = parse(request(*operations), max_operations=len(operations))
    return [operation.bulk_id for operation in execution_order(parsed.operations)]


def test_references_stand_only_where_the_schemas_put_a_resource_id() -> None:
    group = post(
        "g",
        "/Groups",
        displayName="bulkId:name",  # a name, not an id
        members=[{"value": "bulkId:a"}, {"value": "BULKID:b"}, {"value": "bulkId:a"}],
    )
    user = post("u", password="bulkId:secret", manager="bulkId:c", nickName="bulkId:d")
    parsed = parse(request(group, user))
    # exact, case-sensitive prefix; a password or a name is never read as a reference
    assert [operation.references for operation in parsed.operations] == [["a"], ["c"]]
    assert substitute(default_registry(), parsed.operations[0], {"a": "ID-A", "name": "X"}) == {
        "displayName": "bulkId:name",
        "members": [{"value": "ID-A"}, {"value": "BULKID:b"}, {"value": "ID-A"}],
    }
    data = substitute(default_registry(), parsed.operations[1], {"c": "ID-C", "secret": "X"})
    assert data == {
        "password": "bulkId:secret",
        "nickName": "bulkId:d",
        ENTERPRISE: {"manager": "ID-C"},  # Entra's bare id is a reference too
    }
    assert user["data"][ENTERPRISE] == {"manager": "bulkId:c"}  # the request is not changed


def test_references_in_patch_operations() -> None:
    patch = {
        "method": "PATCH",
        "path": "/Groups/bulkId:g",
        "data": {
            "Operations": [
                {"op": "add", "path": "members", "value": [{"value": "bulkId:a"}]},
                {"op": "add", "value": {"members": [{"value": "bulkId:b"}]}},
                {"op": "remove", "path": 'members[value eq "bulkId:c"]'},
                {"op": "replace", "path": "displayName", "value": "bulkId:name"},
            ]
        },
    }
    operation = parse(request(patch)).operations[0]
    assert operation.references == ["g", "a", "b", "c"]
    ids = {"a": "ID-A", "b": "ID-B", "c": "ID-C", "name": "X"}
    assert substitute(default_registry(), operation, ids)["Operations"] == [
        {"op": "add", "path": "members", "value": [{"value": "ID-A"}]},
        {"op": "add", "value": {"members": [{"value": "ID-B"}]}},
        {"op": "remove", "path": 'members[value eq "ID-C"]'},
        {"op": "replace", "path": "displayName", "value": "bulkId:name"},
    ]


def test_request_order_unless_a_referenced_operation_has_not_run_yet() -> None:
    assert order_of(post("a"), post("b"), post("c")) == ["a", "b", "c"]
    # an operation waits for the POSTs it references; nothing moves ahead of what came before
    assert order_of(
        post("g", "/Groups", members=[{"value": "bulkId:u2"}]),
        post("u1"),
        post("u2", manager="bulkId:u3"),
        post("u3"),
    ) == ["u1", "u3", "u2", "g"]
    patch = {"method": "PATCH", "path": "/Users/bulkId:u", "bulkId": "p", "data": {}}
    assert order_of(patch, post("u")) == ["u", "p"]


def test_a_long_chain_is_ordered_without_recursion() -> None:
    chain = [post(f"u{i}", manager=f"bulkId:u{i + 1}") for i in range(4999)] + [post("u4999")]
    order = order_of(*chain)
    assert order == [f"u{i}" for i in reversed(range(5000))]


def test_cycles_are_409_for_every_operation_on_them() -> None:
    parsed = parse(
        request(
            post("a", manager="bulkId:b"),
            post("b", manager="bulkId:c"),
            post("c", manager="bulkId:a"),
            post("self", manager="bulkId:self"),
            post("d", manager="bulkId:a"),
            post("free"),
        )
    )
    order = [operation.bulk_id for operation in execution_order(parsed.operations)]
    # the free one first, then the cycle (refused), then what only waits for it
    assert order == ["free", "a", "b", "c", "self", "d"]
    errors = {operation.bulk_id: operation.error for operation in parsed.operations}
    for name in ("a", "b", "c", "self"):
        error = errors[name]
        assert isinstance(error, UnresolvedReference)
        assert (error.status, error.scim_type) == (409, "invalidValue")
        assert "circular" in error.detail
    assert "references 'b'" in str(errors["a"])
    # d only depends on the cycle: it runs and finds its reference unresolved then
    assert errors["d"] is None
    assert errors["free"] is None


@pytest.mark.parametrize(
    ("operation", "words"),
    [
        ({"method": "GET", "path": "/Users"}, ["method", "'GET'"]),
        ({"path": "/Users"}, ["method", "None"]),
        ({"method": "POST", "path": "/Users", "data": {}}, ["bulkId is required"]),
        ({"method": "POST", "path": "/Users/1", "bulkId": "x", "data": {}}, ["names a resource"]),
        ({"method": "POST", "path": "Users", "bulkId": "x", "data": {}}, ["path is required"]),
        ({"method": "POST", "path": "/Roles", "bulkId": "x", "data": {}}, ["not served"]),
        ({"method": "DELETE", "path": "/Users/"}, ["not served"]),
        ({"method": "DELETE", "path": "/Users"}, ["names one resource"]),
        ({"method": "PUT", "path": "/Groups/1"}, ["data is required"]),
        ({"method": "PATCH", "path": "/Groups/1", "data": []}, ["data is required"]),
        ({"method": "DELETE", "path": "/Users/1", "bulkId": 7}, ["bulkId must be"]),
        ({"method": "DELETE", "path": "/Users/1", "version": 3}, ["version must be"]),
        ("DELETE /Users/1", ["must be an object"]),
    ],
)
def test_a_malformed_operation_gets_its_own_error(operation: Any, words: list[str]) -> None:
    parsed = parse(request(operation, post("ok")))
    error = parsed.operations[0].error
    assert isinstance(error, InvalidSyntax)
    for word in words:
        assert word in error.detail, error.detail
    assert parsed.operations[1].error is None


def test_methods_attribute_names_and_resource_segments_are_case_insensitive() -> None:
    body = {
        "SCHEMAS": [BULK_REQUEST.upper()],
        "operations": [{"Method": "delete", "PATH": "/users/abc", "Version": 'W/"2"'}],
        "FailOnErrors": 2,
    }
    parsed = parse(body, max_operations=1)
    operation = parsed.operations[0]
    assert (operation.method, operation.resource_type, operation.resource_id) == (
        "DELETE",
        "User",
        "abc",
    )
    assert operation.version == 'W/"2"'
    assert operation.error is None
    assert parsed.fail_on_errors == 2


def test_max_operations_is_413_naming_the_limit() -> None:
    with pytest.raises(PayloadTooLarge, match=r"3 operations, more than maxOperations \(2\)"):
        parse(request(post("a"), post("b"), post("c")), max_operations=2)
    assert len(parse(request(post("a"), post("b")), max_operations=2).operations) == 2


@pytest.mark.parametrize("value", [0, -1, 1.5, "2", True])
def test_fail_on_errors_must_be_a_positive_integer(value: Any) -> None:
    with pytest.raises(InvalidSyntax, match="failOnErrors"):
        parse(request(failOnErrors=value), max_operations=10)
