"""BulkRequest parsing, bulkId references and execution order (RFC 7644 §3.7, ``scim.bulk``)."""

from __future__ import annotations

from typing import Any

import pytest

from scim_server.scim.bulk import (
    BULK_REQUEST,
    UnresolvedReference,
    execution_order,
    find_references,
    parse_bulk_request,
    substitute,
)
from scim_server.scim.errors import InvalidSyntax, PayloadTooLarge


def request(*operations: Any, **extra: Any) -> dict[str, Any]:
    return {"schemas": [BULK_REQUEST], "Operations": list(operations), **extra}


def post(bulk_id: str, path: str = "/Users", **data: Any) -> dict[str, Any]:
    return {"method": "POST", "path": path, "bulkId": bulk_id, "data": data}


def order_of(*operations: Any) -> list[str | None]:
    parsed = parse_bulk_request(request(*operations), max_operations=100)
    return [operation.bulk_id for operation in execution_order(parsed.operations)]


def test_references_are_whole_string_values_at_any_depth() -> None:
    value = {
        "members": [{"value": "bulkId:a"}, {"value": "BULKID:b"}, {"value": "bulkId:a"}],
        "manager": "bulkId:c",
        "note": "see bulkId:d",  # not a whole value: not a reference
        "n": 3,
    }
    assert find_references(value) == ["a", "b", "c"]
    assert substitute(value, {"a": "ID-A", "c": "ID-C"}) == {
        "members": [{"value": "ID-A"}, {"value": "BULKID:b"}, {"value": "ID-A"}],
        "manager": "ID-C",
        "note": "see bulkId:d",
        "n": 3,
    }
    assert value["manager"] == "bulkId:c"  # the request is not changed in place


def test_request_order_unless_a_later_operation_is_referenced() -> None:
    assert order_of(post("a"), post("b"), post("c")) == ["a", "b", "c"]
    assert order_of(
        post("g", "/Groups", members=[{"value": "bulkId:u2"}]),
        post("u1"),
        post("u2", manager="bulkId:u3"),
        post("u3"),
    ) == ["u3", "u2", "g", "u1"]
    patch = {"method": "PATCH", "path": "/Users/bulkId:u", "bulkId": "p", "data": {}}
    assert order_of(patch, post("u")) == ["u", "p"]


def test_cycles_are_409_for_every_operation_on_them() -> None:
    parsed = parse_bulk_request(
        request(
            post("a", manager="bulkId:b"),
            post("b", manager="bulkId:c"),
            post("c", manager="bulkId:a"),
            post("self", manager="bulkId:self"),
            post("d", manager="bulkId:a"),
            post("free"),
        ),
        max_operations=100,
    )
    execution_order(parsed.operations)
    errors = {operation.bulk_id: operation.error for operation in parsed.operations}
    for name in ("a", "b", "c", "self"):
        error = errors[name]
        assert isinstance(error, UnresolvedReference)
        assert (error.status, error.scim_type) == (409, "invalidValue")
        assert "circular" in error.detail
    assert "'a' -> 'b' -> 'c' -> 'a'" in str(errors["a"])
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
    parsed = parse_bulk_request(request(operation, post("ok")), max_operations=100)
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
    parsed = parse_bulk_request(body, max_operations=1)
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
        parse_bulk_request(request(post("a"), post("b"), post("c")), max_operations=2)
    assert len(parse_bulk_request(request(post("a"), post("b")), max_operations=2).operations) == 2


@pytest.mark.parametrize("value", [0, -1, 1.5, "2", True])
def test_fail_on_errors_must_be_a_positive_integer(value: Any) -> None:
    with pytest.raises(InvalidSyntax, match="failOnErrors"):
        parse_bulk_request(request(failOnErrors=value), max_operations=10)
