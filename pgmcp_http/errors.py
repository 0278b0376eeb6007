"""Errors shared across layers without importing them: what the protocol layer needs to tell apart.

The tool and resource code raise these; the protocol layer maps them to
JSON-RPC errors. Kept here, importing nothing, so neither side depends on the other.
"""

from __future__ import annotations

__all__ = ["ForbiddenError", "NotFoundError", "UnavailableError"]


class NotFoundError(LookupError):
    """No tool, resource or prompt of that name: the caller's mistake, reported as a protocol error."""


class UnavailableError(Exception):
    """The database cannot answer right now (down or busy); the message says what to do."""


class ForbiddenError(Exception):
    """The caller may not do this (no database role, or a role refused); the message says what to ask for."""
