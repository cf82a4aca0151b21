"""``/Bulk`` (RFC 7644 §3.7, DESIGN §4, §5.4, §6): run a BulkRequest's operations one by one.

Each operation is exactly its single request: the same IdP dialect normalisation, the same use
case in ``services.users``/``services.groups`` (schema validation, domain policy, seats,
temporary access, last-admin guard, ownership, If-Match from the operation's ``version``), in its
own transaction with its own audit event sealed inside it. Bulk is not atomic as a whole (§3.7:
"continue performing as many changes as possible"): an operation that fails rolls back alone and
records its refusal event in a transaction of its own, as a refused single request does.

Audit: every operation that runs is one event, named as its single form (``user.create``,
``group.patch``, ...), with the bulk request's request id and a ``detail`` starting with
``bulk Operations[i]`` (and, for a refusal, the error's detail). The request itself is one more
event, ``bulk``, recorded by the HTTP layer after the operations, whose ``detail`` sums up what
ran. Operations skipped after ``failOnErrors`` errors are neither run, reported nor logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.exc import DBAPIError

from scim_server.audit.chain import append
from scim_server.audit.events import EventDraft
from scim_server.scim.bulk import (
    BULK_RESPONSE,
    BulkOperation,
    BulkRequest,
    UnresolvedReference,
    execution_order,
    substitute,
    substitute_path,
)
from scim_server.scim.errors import ScimError, ServiceUnavailable
from scim_server.services.context import RequestContext
from scim_server.services.transaction import perform_write
from scim_server.services.writes import WRITES
from scim_server.store.db import Database
from scim_server.store.errors import database_unavailable, lock_wait_timed_out

log = logging.getLogger("scim_server.bulk")

#: The event of an operation too malformed to say what it would have done.
UNKNOWN_OPERATION = "bulk.operation"


class InternalError(ScimError):
    """An unexpected failure of one operation: reported in its slot, never its traceback."""

    status = 500


@dataclass(frozen=True)
class OperationResult:
    """One element of the BulkResponse's ``Operations`` (§3.7.3)."""

    operation: BulkOperation
    status: int
    location: str | None = None
    version: str | None = None
    error: ScimError | None = None

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.operation.method is not None:
            doc["method"] = self.operation.method
        if self.operation.bulk_id is not None:
            doc["bulkId"] = self.operation.bulk_id
        if self.location is not None:
            doc["location"] = self.location
        if self.version is not None:
            doc["version"] = self.version
        doc["status"] = str(self.status)  # a string, as in RFC 7644 §3.7.3's examples
        if self.error is not None:
            doc["response"] = self.error.to_body()
        return doc


@dataclass(frozen=True)
class BulkOutcome:
    results: list[OperationResult]
    #: Operations in the request, run or not.
    total: int
    #: The ``failOnErrors`` that stopped processing, if it did.
    stopped_at: int | None
    #: Whether processing stopped because the database could not be reached.
    unavailable: bool = False

    @property
    def failed(self) -> int:
        return sum(1 for result in self.results if result.error is not None)

    def document(self) -> dict[str, Any]:
        return {
            "schemas": [BULK_RESPONSE],
            "Operations": [result.document() for result in self.results],
        }

    def summary(self) -> str:
        ran = len(self.results)
        text = (
            f"bulk: {ran} of {self.total} operations run, {ran - self.failed} succeeded, "
            f"{self.failed} failed"
        )
        if self.stopped_at is not None:
            text += f"; stopped after failOnErrors={self.stopped_at} errors"
        if self.unavailable:
            text += "; stopped: the database is unavailable or busy"
        return text


def run_bulk(database: Database, ctx: RequestContext, bulk: BulkRequest) -> BulkOutcome:
    """Run the operations in dependency order until ``failOnErrors`` errors, if given; the
    results in request order. Raises the database's error if it is unavailable before any
    operation succeeded (the HTTP layer answers 503)."""
    declared = {
        operation.bulk_id
        for operation in bulk.operations
        if operation.method == "POST" and operation.bulk_id is not None
    }
    created: dict[str, str] = {}
    failed: dict[str, int] = {}
    results: list[OperationResult] = []
    errors = 0
    stopped_at: int | None = None
    unavailable = False
    for operation in execution_order(bulk.operations):
        try:
            result = _run(database, ctx, operation, declared, created, failed)
        except DBAPIError as error:
            if not database_unavailable(error):
                raise
            log.error(
                "database unavailable in bulk %s (request %s); stopping",
                operation.label,
                ctx.audit.request_id,
            )
            if not any(result.error is None for result in results):
                raise
            failure = ServiceUnavailable(
                "waited too long for data another transaction holds (a large users import, "
                "for example); retry later"
                if lock_wait_timed_out(error)
                else "the database is unavailable; retry later"
            )
            results.append(OperationResult(operation, failure.status, None, None, failure))
            unavailable = True
            break
        results.append(result)
        if result.error is None:
            continue
        errors += 1
        if operation.bulk_id is not None:
            failed[operation.bulk_id] = result.status
        if bulk.fail_on_errors is not None and errors >= bulk.fail_on_errors:
            stopped_at = bulk.fail_on_errors
            break
    results.sort(key=lambda result: result.operation.index)
    outcome = BulkOutcome(results, len(bulk.operations), stopped_at, unavailable)
    ctx.audit.detail = outcome.summary()
    return outcome


def _draft(parent: EventDraft, operation: BulkOperation) -> EventDraft:
    """The operation's own event: the bulk request's caller and request id, its own name."""
    write = WRITES.get((operation.resource_type or "", operation.method or ""))
    name = UNKNOWN_OPERATION if write is None else write.operation
    return EventDraft(
        operation=name,
        org_id=parent.org_id,
        actor_type=parent.actor_type,
        actor=parent.actor,
        token_prefix=parent.token_prefix,
        request_id=parent.request_id,
        client_ip=parent.client_ip,
        user_agent=parent.user_agent,
        detail=f"bulk {operation.label}",
    )


def _check_references(
    operation: BulkOperation, declared: set[str], created: dict[str, str], failed: dict[str, int]
) -> None:
    for reference in operation.references:
        if reference in created:
            continue
        if reference not in declared:
            reason = "which no POST operation of this request declares"
        elif reference in failed:
            reason = f"whose operation failed (status {failed[reference]})"
        else:
            reason = "whose operation could not run before this one"
        raise UnresolvedReference(
            f"{operation.label} references bulkId {reference!r}, {reason}; "
            "the reference cannot be resolved"
        )


def _run(
    database: Database,
    ctx: RequestContext,
    operation: BulkOperation,
    declared: set[str],
    created: dict[str, str],
    failed: dict[str, int],
) -> OperationResult:
    op_ctx = replace(ctx, audit=_draft(ctx.audit, operation))
    resource_id: str | None = None
    try:
        if operation.error is not None:
            raise operation.error
        _check_references(operation, declared, created, failed)
        assert operation.resource_type is not None
        if operation.resource_id is not None:
            resource_id = substitute_path(operation.resource_id, created)
        status, action, args = _use_case(op_ctx, operation, resource_id, created)
        rendered = perform_write(database, op_ctx, status, action, *args)
    except ScimError as error:
        return _refused(database, op_ctx, operation, resource_id, error)
    except DBAPIError as error:
        if database_unavailable(error):
            raise  # run_bulk stops the request
        return _internal(database, op_ctx, operation, resource_id)
    except Exception:  # one operation's failure must not hide the others' results
        return _internal(database, op_ctx, operation, resource_id)
    if operation.method == "POST":
        resource_id = str(rendered.document["id"])
        assert operation.bulk_id is not None
        created[operation.bulk_id] = resource_id
    assert resource_id is not None
    location = _location(ctx, operation.resource_type, resource_id)
    version = None if rendered is None else rendered.etag
    return OperationResult(operation, status, location, version)


def _location(ctx: RequestContext, resource_type: str, resource_id: str) -> str:
    """The resource's URL, its endpoint as its ResourceType document names it (``/Users``)."""
    return f"{ctx.base_url}{ctx.registry.resource_type(resource_type).endpoint}/{resource_id}"


def _internal(
    database: Database, ctx: RequestContext, operation: BulkOperation, resource_id: str | None
) -> OperationResult:
    log.exception("internal error in bulk %s (request %s)", operation.label, ctx.audit.request_id)
    failure = InternalError(f"internal error (request id {ctx.audit.request_id})")
    return _refused(database, ctx, operation, resource_id, failure)


def _use_case(
    ctx: RequestContext, operation: BulkOperation, resource_id: str | None, created: dict[str, str]
) -> tuple[int, Callable[..., Any], tuple[Any, ...]]:
    """The single request's status, use case and arguments (``services.writes``), the data
    normalised as the single endpoint normalises it (after references are replaced: a bare
    ``manager`` id still works)."""
    write = WRITES[operation.resource_type or "", operation.method or ""]
    if write.normalise is None:  # DELETE
        return write.status, write.action, (resource_id, operation.version)
    rt = ctx.registry.resource_type(operation.resource_type or "")
    body = write.normalise(rt, substitute(ctx.registry, operation, created))
    if operation.method == "POST":
        return write.status, write.action, (body,)
    return write.status, write.action, (resource_id, body, operation.version)


def _refused(
    database: Database,
    ctx: RequestContext,
    operation: BulkOperation,
    resource_id: str | None,
    error: ScimError,
) -> OperationResult:
    """Record the operation's refusal as its own event (its write, if any, rolled back)."""
    draft = ctx.audit
    draft.status = error.status
    draft.scim_type = error.scim_type
    draft.detail = f"bulk {operation.label}: {error.detail}"
    draft.changes = None
    try:
        with database.transaction(write=True) as session:
            append(session, draft)
    except Exception:
        log.exception(
            "could not record audit event of bulk %s (request %s)",
            operation.label,
            draft.request_id,
        )
    # RFC 7644 §3.7: location is required except for a failed POST; an unresolved reference in
    # the path is shown as sent, which names what the operation addressed.
    target = resource_id if resource_id is not None else operation.resource_id
    location = None
    if target is not None and operation.resource_type is not None:
        location = _location(ctx, operation.resource_type, target)
    return OperationResult(operation, error.status, location, None, error)
