"""The refusal of an admin action (CLI, admin API), shared by the admin services."""

from __future__ import annotations


class ServiceError(Exception):
    """A refusal of an admin action, with a message for the admin."""
