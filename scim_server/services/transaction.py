"""A write's one transaction, with its audit event sealed inside it (DESIGN §2, §6).

A successful write commits together with its event: no change without its event, and no event
for a change that rolled back. Reads run in the request's read transaction (``http.request_db``);
their events, refusals and failures are recorded by the HTTP layer after it has ended.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.orm import Session

from scim_server.audit.chain import append
from scim_server.services.context import RequestContext
from scim_server.store.db import Database

P = ParamSpec("P")
R = TypeVar("R")


def perform_write(
    database: Database,
    ctx: RequestContext,
    status: int,
    action: Callable[Concatenate[Session, RequestContext, P], R],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """Run a use case that changes data; its audit event commits with it or not at all."""
    try:
        with database.transaction(write=True) as session:
            result = action(session, ctx, *args, **kwargs)
            ctx.audit.status = status
            append(session, ctx.audit)
            return result
    except BaseException:
        # The event, if appended, rolled back with the change (even when COMMIT itself
        # failed): the HTTP layer records the refusal or failure in its own transaction.
        ctx.audit.recorded = False
        ctx.audit.changes = None
        raise
