"""The BulkRequest message (RFC 7644 §3.7): parsing, ``bulkId`` references, execution order.

Framework-free protocol logic; ``services.bulk`` runs the operations.

What is wrong with the request *as a whole* answers 400 ``invalidSyntax`` before anything runs:
a body that is not an object, no ``BulkRequest`` URN in ``schemas``, no ``Operations`` array, a
``failOnErrors`` that is not a positive integer, the same ``bulkId`` on two operations (every
reference to it would be ambiguous). More operations than ``maxOperations`` answers 413
(§3.7.4). What is wrong with *one* operation — not an object, an unknown method, a path this
server does not serve, a POST without ``bulkId``, a PUT/PATCH/DELETE without a resource id, no
``data`` — is that operation's error, in its slot of the BulkResponse (400 ``invalidSyntax``, as
in the RFC's §3.7.3 example), counted against ``failOnErrors``, while the others run.

``bulkId:<id>`` references (§3.7.2) may appear in ``path`` and anywhere in ``data`` as a whole
string value. They may point forward: operations run in request order, except that an operation
runs right before the first operation that references it (a depth-first order over the
references). Operations on a reference cycle are not run and answer 409 (§3.7.1 allows it); a
reference to a bulkId no POST of the request declares, or whose operation failed, answers 409
too. RFC 7644 §3.12 has no ``scimType`` for a 409 other than ``uniqueness``; these carry
``invalidValue`` because the offending value is the reference itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from scim_server.scim.errors import InvalidSyntax, PayloadTooLarge, ScimError

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
METHODS = ("POST", "PUT", "PATCH", "DELETE")
#: Resource endpoints an operation may address, by the case-insensitive first path segment.
ENDPOINTS = {"users": "User", "groups": "Group"}
REFERENCE_PREFIX = "bulkId:"
_REFERENCE = re.compile(r"bulkId:(.+)", re.IGNORECASE | re.DOTALL)


class UnresolvedReference(ScimError):
    """An operation names a ``bulkId`` whose resource does not exist (§3.7.2): 409."""

    status = 409
    scim_type = "invalidValue"


@dataclass
class BulkOperation:
    """One element of ``Operations``, as far as it could be understood."""

    index: int
    method: str | None = None
    bulk_id: str | None = None
    version: str | None = None
    #: "User" or "Group"
    resource_type: str | None = None
    #: The id in ``path`` (possibly a ``bulkId:`` reference); None for a POST.
    resource_id: str | None = None
    data: Any = None
    #: bulkIds this operation references, in the order they appear.
    references: list[str] = field(default_factory=list)
    #: Why this operation cannot run; it is answered in its slot without running.
    error: ScimError | None = None

    @property
    def label(self) -> str:
        named = f" (bulkId {self.bulk_id!r})" if self.bulk_id else ""
        return f"Operations[{self.index}]{named}"


@dataclass(frozen=True)
class BulkRequest:
    operations: list[BulkOperation]
    #: Stop after this many errors (None: run every operation).
    fail_on_errors: int | None


def _get_ci(document: dict[str, Any], name: str) -> Any:
    """Attribute names are case-insensitive (RFC 7643 §2.1), message attributes included."""
    for key, value in document.items():
        if isinstance(key, str) and key.lower() == name.lower():
            return value
    return None


def parse_bulk_request(body: Any, *, max_operations: int) -> BulkRequest:
    """The request's operations, each with its slot error if it has one; raises for errors
    of the request as a whole (400, or 413 over ``maxOperations``)."""
    if not isinstance(body, dict):
        raise InvalidSyntax("a BulkRequest must be a JSON object")
    schemas = _get_ci(body, "schemas")
    if not isinstance(schemas, list) or BULK_REQUEST.lower() not in {
        str(urn).lower() for urn in schemas
    }:
        raise InvalidSyntax(f'schemas must contain "{BULK_REQUEST}"')
    operations = _get_ci(body, "Operations")
    if not isinstance(operations, list):
        raise InvalidSyntax("Operations is required: an array of operations")
    if len(operations) > max_operations:
        raise PayloadTooLarge(
            f"the bulk request has {len(operations)} operations, more than maxOperations "
            f"({max_operations}); split it into several requests"
        )
    fail_on_errors = _get_ci(body, "failOnErrors")
    if fail_on_errors is not None and (
        isinstance(fail_on_errors, bool)
        or not isinstance(fail_on_errors, int)
        or fail_on_errors < 1
    ):
        raise InvalidSyntax(f"failOnErrors must be a positive integer, got {fail_on_errors!r}")
    parsed = [_parse_operation(index, element) for index, element in enumerate(operations)]
    seen: dict[str, int] = {}
    for operation in parsed:
        if operation.bulk_id is None:
            continue
        if operation.bulk_id in seen:
            raise InvalidSyntax(
                f"bulkId {operation.bulk_id!r} is used by Operations[{seen[operation.bulk_id]}] "
                f"and Operations[{operation.index}]; a bulkId must be unique within the request"
            )
        seen[operation.bulk_id] = operation.index
    return BulkRequest(parsed, fail_on_errors)


def _parse_operation(index: int, element: Any) -> BulkOperation:
    operation = BulkOperation(index)
    if not isinstance(element, dict):
        operation.error = InvalidSyntax(f"Operations[{index}] must be an object")
        return operation
    method = _get_ci(element, "method")
    bulk_id = _get_ci(element, "bulkId")
    version = _get_ci(element, "version")
    path = _get_ci(element, "path")
    operation.data = _get_ci(element, "data")
    if isinstance(method, str):
        operation.method = method.upper()
    if isinstance(bulk_id, str) and bulk_id:
        operation.bulk_id = bulk_id
    if isinstance(version, str) and version:
        operation.version = version
    operation.error = _operation_error(operation, method, bulk_id, version, path)
    if operation.error is None:
        operation.references = find_references(operation.resource_id) + find_references(
            operation.data if operation.method != "DELETE" else None
        )
    return operation


def _operation_error(
    operation: BulkOperation, method: Any, bulk_id: Any, version: Any, path: Any
) -> ScimError | None:
    """What makes this operation impossible to run, or None; fills in its target."""
    where = f"Operations[{operation.index}]"
    if operation.method not in METHODS:
        return InvalidSyntax(
            f"{where}.method {method!r} is not supported; use one of {', '.join(METHODS)}"
        )
    if bulk_id is not None and operation.bulk_id is None:
        return InvalidSyntax(f"{where}.bulkId must be a non-empty string")
    if version is not None and operation.version is None:
        return InvalidSyntax(f"{where}.version must be a non-empty string (an ETag)")
    if not isinstance(path, str) or not path.startswith("/"):
        return InvalidSyntax(
            f"{where}.path is required: /Users or /Groups for a POST, /Users/{{id}} or "
            "/Groups/{id} otherwise"
        )
    segments = path[1:].split("/")
    resource_type = ENDPOINTS.get(segments[0].lower())
    if resource_type is None or len(segments) > 2 or (len(segments) == 2 and not segments[1]):
        return InvalidSyntax(
            f"{where}.path {path!r} is not served by /Bulk: use /Users, /Users/{{id}}, /Groups "
            "or /Groups/{id}"
        )
    operation.resource_type = resource_type
    resource_id = segments[1] if len(segments) == 2 else None
    if operation.method == "POST":
        if resource_id is not None:
            return InvalidSyntax(f"{where}.path of a POST names a resource type (/Users, /Groups)")
        if operation.bulk_id is None:
            return InvalidSyntax(f"{where}.bulkId is required for a POST (RFC 7644 §3.7)")
    elif resource_id is None:
        return InvalidSyntax(
            f"{where}.path of a {operation.method} names one resource: /{segments[0]}/{{id}}"
        )
    operation.resource_id = resource_id
    if operation.method != "DELETE" and not isinstance(operation.data, dict):
        return InvalidSyntax(f"{where}.data is required for a {operation.method}: a JSON object")
    return None


def _reference(value: str) -> str | None:
    match = _REFERENCE.fullmatch(value)
    return match.group(1) if match else None


def find_references(value: Any) -> list[str]:
    """The bulkIds ``value`` references (``"bulkId:<id>"`` string values), at any depth."""
    found: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, str):
            reference = _reference(item)
            if reference is not None and reference not in found:
                found.append(reference)
        elif isinstance(item, dict):
            for child in item.values():
                walk(child)
        elif isinstance(item, list):
            for child in item:
                walk(child)

    walk(value)
    return found


def substitute(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with every reference replaced by the id of the resource it names (a copy)."""
    if isinstance(value, str):
        reference = _reference(value)
        return ids.get(reference, value) if reference is not None else value
    if isinstance(value, dict):
        return {key: substitute(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, ids) for item in value]
    return value


def execution_order(operations: list[BulkOperation]) -> list[BulkOperation]:
    """Request order, with each operation moved right before the first one referencing it.

    Operations on a reference cycle get a 409 error and stay at their request position; an
    operation referencing one of them then finds the reference unresolved when it runs.
    """
    creators = {
        operation.bulk_id: operation
        for operation in operations
        if operation.method == "POST" and operation.bulk_id is not None and operation.error is None
    }
    order: list[BulkOperation] = []
    state: dict[int, str] = {}  # index -> "active" while on the stack, "done" after

    def visit(operation: BulkOperation, stack: list[BulkOperation]) -> None:
        state[operation.index] = "active"
        stack.append(operation)
        for reference in operation.references:
            target = creators.get(reference)
            if target is None or state.get(target.index) == "done":
                continue
            if state.get(target.index) == "active":
                cycle = stack[stack.index(target) :]
                names = " -> ".join(repr(member.bulk_id) for member in [*cycle, target])
                for member in cycle:
                    if member.error is None:
                        member.error = UnresolvedReference(
                            f"{member.label} is on a circular bulkId reference ({names}); "
                            "the server does not resolve cycles: create the resources first, "
                            "then link them with PATCH in a later operation"
                        )
                continue
            visit(target, stack)
        stack.pop()
        state[operation.index] = "done"
        order.append(operation)

    for operation in operations:
        if operation.index not in state:
            visit(operation, [])
    return order
