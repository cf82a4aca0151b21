"""What an audit event says (DESIGN §6), before it is sealed into the chain.

An :class:`EventDraft` is opened when a request (or CLI action) starts, filled in as the work
proceeds (which resource, what changed) and recorded exactly once: inside the transaction of a
successful write, or in its own transaction for a read, a refusal or a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scim_server.store.models import SYSTEM_CHAIN

#: Keys whose values never reach an event, at any depth (DESIGN §7).
SECRET_KEYS = frozenset({"password", "token", "secret", "client_secret", "authorization"})
REDACTED = "[redacted]"
MAX_DETAIL = 2048


@dataclass
class EventDraft:
    operation: str
    org_id: int = SYSTEM_CHAIN
    actor_type: str = "anonymous"  # connection | admin | audit | cli | anonymous
    actor: str | None = None
    token_prefix: str | None = None
    request_id: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    user_name: str | None = None
    changes: dict[str, Any] | None = None
    status: int | None = None
    scim_type: str | None = None
    detail: str | None = None
    recorded: bool = field(default=False, compare=False)

    @property
    def outcome(self) -> str:
        if self.status is None or self.status < 400:
            return "success"
        return "failed" if self.status >= 500 else "refused"


def redact(value: Any) -> Any:
    """``value`` with every secret-named key's value replaced, at any depth."""
    if isinstance(value, dict):
        return {
            key: REDACTED if str(key).lower() in SECRET_KEYS else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def document_changes(
    before: dict[str, Any] | None, after: dict[str, Any] | None, extensions: tuple[str, ...] = ()
) -> dict[str, list[Any]]:
    """Attribute-level change ``{attribute: [before, after]}`` between two canonical documents.

    Extension attributes are named ``urn:...:attribute`` (RFC 7644 §3.10), so an auditor sees
    ``department`` change rather than a whole extension object. ``schemas`` is bookkeeping and
    left out; secrets are redacted.
    """
    flat_before = _flatten(before or {}, extensions)
    flat_after = _flatten(after or {}, extensions)
    changed: dict[str, list[Any]] = {}
    for key in [*flat_before, *(k for k in flat_after if k not in flat_before)]:
        old, new = flat_before.get(key), flat_after.get(key)
        if old != new:
            changed[key] = [redact(old), redact(new)]
    return changed


def _flatten(doc: dict[str, Any], extensions: tuple[str, ...]) -> dict[str, Any]:
    lowered = {urn.lower() for urn in extensions}
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "schemas":
            continue
        if key.lower() in lowered and isinstance(value, dict):
            for sub, item in value.items():
                flat[f"{key}:{sub}"] = item
        else:
            flat[key] = value
    return flat
