"""Retention (DESIGN §6): cut the oldest events, leaving a checkpoint so the chain still verifies.

Only a prefix of an organisation's chain is ever removed. The checkpoint is an ordinary event
(``audit.prune``) appended in the same transaction as the deletion; it records the sequence
number and hash of the last removed event, which is exactly what the first remaining event's
``prev_hash`` must equal. Being itself in the chain, the checkpoint cannot be altered without
breaking every hash after it, and signed (``audit.signing``) it cannot be resealed either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.orm import Session

from scim_server.audit.chain import append_checkpoint
from scim_server.audit.events import EventDraft
from scim_server.audit.signing import SigningKey
from scim_server.store.models import AuditEvent


@dataclass(frozen=True)
class PruneResult:
    pruned: int
    cut_seq: int | None
    cut_hash: str | None
    checkpoint_seq: int


def prune(
    session: Session, draft: EventDraft, before: datetime, key: SigningKey | None
) -> PruneResult:
    """Remove ``draft.org_id``'s events recorded before ``before``; seal a checkpoint event,
    signed under ``key`` when one is given."""
    org_id = draft.org_id
    cut_seq = session.scalar(
        select(func.max(AuditEvent.seq)).where(
            AuditEvent.org_id == org_id, AuditEvent.time < before
        )
    )
    cut_hash: str | None = None
    pruned = 0
    if cut_seq is not None:
        cut_hash = session.scalar(
            select(AuditEvent.hash).where(AuditEvent.org_id == org_id, AuditEvent.seq == cut_seq)
        )
        result = session.execute(
            delete(AuditEvent).where(AuditEvent.org_id == org_id, AuditEvent.seq <= cut_seq)
        )
        pruned = cast("CursorResult[Any]", result).rowcount
    draft.resource_type = "AuditLog"
    draft.changes = {
        "cut": {"seq": cut_seq, "hash": cut_hash} if cut_seq is not None else None,
        "pruned": pruned,
        "before": before.isoformat().replace("+00:00", "Z"),
    }
    checkpoint = append_checkpoint(session, draft, key)
    return PruneResult(pruned, cut_seq, cut_hash, checkpoint.seq)
