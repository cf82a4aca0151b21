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

``bulkId:<id>`` references (§3.7.2) may appear in ``path`` and where the schemas put a resource
id (``scim.bulk_references``: ``members[].value``, ``manager.value``, the PATCH paths to them);
anywhere else a ``bulkId:``-looking string is plain data. They may point forward. Operations run
in request order, except that one referencing a bulkId whose POST has not run yet is held back
until it has (Kahn's algorithm, the lowest request index first among the operations ready to
run), so an operation never moves ahead of one the client sent before it. What is still held at
the end is on a reference cycle (or between cycles) and answers 409 (§3.7.1 allows it), or waits
for such an operation and finds its reference failed; a reference to a bulkId no POST of the
request declares, or whose operation failed, answers 409 too. RFC 7644 §3.12 has no
``scimType`` for a 409 other than ``uniqueness``; these carry ``invalidValue`` because the
offending value is the reference itself. Results are reported in request order, whatever order
the operations ran in: clients match them by position.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from scim_server.scim.bulk_references import map_references, reference_of
from scim_server.scim.errors import InvalidSyntax, PayloadTooLarge, ScimError
from scim_server.scim.schema import Registry

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
METHODS = ("POST", "PUT", "PATCH", "DELETE")
#: Resource endpoints an operation may address, by the case-insensitive first path segment.
ENDPOINTS = {"users": "User", "groups": "Group"}


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


def parse_bulk_request(body: Any, *, registry: Registry, max_operations: int) -> BulkRequest:
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
    parsed = [
        _parse_operation(registry, index, element) for index, element in enumerate(operations)
    ]
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


def _parse_operation(registry: Registry, index: int, element: Any) -> BulkOperation:
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
        operation.references = find_references(registry, operation)
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


def find_references(registry: Registry, operation: BulkOperation) -> list[str]:
    """The bulkIds ``operation`` references (its path's id, then its data), each once."""
    found: list[str] = []

    def note(value: str) -> str:
        reference = reference_of(value)
        if reference is not None and reference not in found:
            found.append(reference)
        return value

    if operation.resource_id is not None:
        note(operation.resource_id)
    if operation.resource_type is not None and operation.method is not None:
        rt = registry.resource_type(operation.resource_type)
        map_references(rt, operation.method, operation.data, ENDPOINTS.values(), note)
    return found


def substitute_path(resource_id: str, ids: dict[str, str]) -> str:
    """The id in an operation's path, a reference replaced by the id it names."""
    reference = reference_of(resource_id)
    return ids.get(reference, resource_id) if reference is not None else resource_id


def substitute(registry: Registry, operation: BulkOperation, ids: dict[str, str]) -> Any:
    """The operation's data with every reference replaced by the id it names (a copy)."""
    assert operation.resource_type is not None
    assert operation.method is not None

    def resolve(value: str) -> str:
        reference = reference_of(value)
        return ids.get(reference, value) if reference is not None else value

    rt = registry.resource_type(operation.resource_type)
    return map_references(rt, operation.method, operation.data, ENDPOINTS.values(), resolve)


def execution_order(operations: list[BulkOperation]) -> list[BulkOperation]:
    """Request order, holding each operation back until the POSTs it references have run.

    Iterative (Kahn's algorithm with a heap of ready request indexes), so a chain of 1,000
    references costs no recursion. Operations still held at the end are on a reference cycle or
    between cycles: they get a 409 error and come next, in request order; then those that only
    wait for them, each after what it waits for, to find their reference failed when they run.
    """
    creators = {
        operation.bulk_id: operation
        for operation in operations
        if operation.method == "POST" and operation.bulk_id is not None
    }
    blockers: dict[int, set[str]] = {}
    dependents: dict[str, list[BulkOperation]] = defaultdict(list)
    for operation in operations:
        blockers[operation.index] = {ref for ref in operation.references if ref in creators}
        for reference in blockers[operation.index]:
            dependents[reference].append(operation)
    by_index = {operation.index: operation for operation in operations}
    waiting = {index: len(refs) for index, refs in blockers.items()}
    ready = [index for index, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[BulkOperation] = []
    while ready:
        operation = by_index[heapq.heappop(ready)]
        order.append(operation)
        del waiting[operation.index]
        if operation.method == "POST" and operation.bulk_id is not None:
            for dependent in dependents.pop(operation.bulk_id, []):
                waiting[dependent.index] -= 1
                if waiting[dependent.index] == 0:
                    heapq.heappush(ready, dependent.index)
    if not waiting:
        return order
    # Peel off, most dependent first, the held operations no other held operation waits for;
    # what remains is on a cycle (or between two).
    held = set(waiting)
    referenced: dict[str, int] = defaultdict(int)
    for index in held:
        for reference in blockers[index]:
            referenced[reference] += 1
    peel = [index for index in held if not referenced.get(by_index[index].bulk_id or "", 0)]
    downstream: list[BulkOperation] = []
    while peel:
        index = peel.pop()
        held.discard(index)
        downstream.append(by_index[index])
        for reference in blockers[index]:
            referenced[reference] -= 1
            if referenced[reference] == 0 and creators[reference].index in held:
                peel.append(creators[reference].index)
    for index in sorted(held):
        member = by_index[index]
        names = ", ".join(repr(name) for name in sorted(blockers[index]))
        if member.error is None:
            member.error = UnresolvedReference(
                f"{member.label} is on a circular bulkId reference (it references {names}, "
                "which in turn depend on it); the server does not resolve cycles: create the "
                "resources first, then link them with PATCH in a later operation"
            )
        order.append(member)
    order.extend(reversed(downstream))
    return order
