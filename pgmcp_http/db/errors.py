"""Errors of the database layer: each names what failed and what to do next.

Tools turn these into ``isError`` results; nothing here knows about HTTP or MCP.
"""

from __future__ import annotations

__all__ = [
    "ConnectionLost",
    "DatabaseError",
    "DatabaseUnavailable",
    "PoolClosed",
    "PoolTimeout",
    "QueryCancelled",
    "QueryFailed",
    "QueryTimeout",
    "RoleRefused",
    "RoleUnavailable",
    "first_line",
]


class DatabaseError(Exception):
    """Base class of every error raised by ``pgmcp_http.db``."""


class PoolTimeout(DatabaseError):
    """No connection became free within POOL_CONNECTION_TIMEOUT: the server is busy."""


class PoolClosed(DatabaseError):
    """The pool was closed (the worker is shutting down)."""


class DatabaseUnavailable(DatabaseError):
    """PostgreSQL could not be reached or refused the connection."""


class ConnectionLost(DatabaseUnavailable):
    """A pooled connection died under a statement; nothing was committed, so a retry is safe."""

    @classmethod
    def of(cls, exc: BaseException) -> ConnectionLost:
        return cls(f"database unavailable: the connection was lost ({first_line(exc)})")


class QueryTimeout(DatabaseError):
    """PostgreSQL cancelled the statement because it ran past its time limit."""

    def __init__(self, timeout_ms: int, setting: str = "QUERY_TIMEOUT") -> None:
        self.timeout_ms = timeout_ms
        self.setting = setting
        super().__init__(
            f"the statement was cancelled after {timeout_ms / 1000:g} s ({setting}={timeout_ms}); "
            "add a filter or a LIMIT, or ask the operator to raise the limit"
        )


class QueryCancelled(DatabaseError):
    """The statement was cancelled on request (the caller went away or cancelled it)."""


class QueryFailed(DatabaseError):
    """PostgreSQL rejected the statement; carries its SQLSTATE and hints."""

    def __init__(self, message: str, *, sqlstate: str | None, detail: str | None = None,
                 hint: str | None = None, near: str | None = None) -> None:
        self.message = message
        self.sqlstate = sqlstate
        self.detail = detail
        self.hint = hint
        self.near = near
        super().__init__(message)

    def describe(self) -> str:
        """The message a person reads: PostgreSQL's words, its detail and hint, and the SQLSTATE."""
        parts = [self.message]
        if self.detail:
            parts.append(f"Detail: {self.detail}")
        if self.hint:
            parts.append(f"Hint: {self.hint}")
        if self.near:
            parts.append(f"(near: {self.near})")
        if self.sqlstate:
            parts.append(f"[SQLSTATE {self.sqlstate}]")
        return " ".join(parts)


class RoleRefused(DatabaseError):
    """The caller may not run SQL at all (no role while ROLE_REQUIRED=true); nothing was sent."""


class RoleUnavailable(DatabaseError):
    """PostgreSQL would not switch to the caller's role (it does not exist, or the login role was not
    granted it): the call ends here, and nothing ran under the login role."""


def first_line(exc: BaseException) -> str:
    """The first line of a driver error, which is what a message may quote: libpq's names the host and the
    reason, never the password (later lines carry PostgreSQL's detail and context)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
