"""SCIM errors (RFC 7644 §3.12): one exception per status/``scimType``, rendered in one place.

Every failure a client can cause is raised as a :class:`ScimError`; the HTTP layer turns it into
the SCIM error schema. ``detail`` must name the attribute and the rule, because it is what an IT
admin reads in Okta's or Entra's provisioning log.
"""

from __future__ import annotations

from typing import Any, ClassVar

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(Exception):
    """Base of every error answered in the SCIM error schema."""

    status: ClassVar[int] = 400
    scim_type: ClassVar[str | None] = None

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "schemas": [ERROR_SCHEMA],
            "status": str(self.status),
            "detail": self.detail,
        }
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


class InvalidFilter(ScimError):
    scim_type = "invalidFilter"


class TooMany(ScimError):
    scim_type = "tooMany"


class Uniqueness(ScimError):
    status = 409
    scim_type = "uniqueness"


class Mutability(ScimError):
    scim_type = "mutability"


class InvalidSyntax(ScimError):
    scim_type = "invalidSyntax"


class InvalidPath(ScimError):
    scim_type = "invalidPath"


class NoTarget(ScimError):
    scim_type = "noTarget"


class InvalidValue(ScimError):
    scim_type = "invalidValue"


class InvalidVersion(ScimError):
    scim_type = "invalidVers"


class InvalidCursor(ScimError):
    """RFC 9865 §2.1: a cursor this server did not issue for this query (altered, or issued for
    another filter, sort, resource type or organisation)."""

    scim_type = "invalidCursor"


class ExpiredCursor(ScimError):
    """RFC 9865 §2.1: a cursor older than ``cursorTimeout``."""

    scim_type = "expiredCursor"


class InvalidCount(ScimError):
    """RFC 9865 §2.1: a cursor page's ``count`` outside 1..maxPageSize."""

    scim_type = "invalidCount"


class Sensitive(ScimError):
    status = 403
    scim_type = "sensitive"


class BadRequest(ScimError):
    """A 400 that no RFC 7644 ``scimType`` describes (for example an unusable query parameter)."""


class Unauthorized(ScimError):
    status = 401


class Forbidden(ScimError):
    status = 403


class NotFound(ScimError):
    status = 404


class MethodNotAllowed(ScimError):
    status = 405


class Conflict(ScimError):
    status = 409


class PreconditionFailed(ScimError):
    status = 412


class PayloadTooLarge(ScimError):
    status = 413


class UnsupportedMediaType(ScimError):
    status = 415


class TooManyRequests(ScimError):
    status = 429


class NotImplementedFeature(ScimError):
    status = 501


class ServiceUnavailable(ScimError):
    status = 503
