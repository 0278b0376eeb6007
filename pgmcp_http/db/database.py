"""The worker's access to PostgreSQL: its pool and transaction defaults in one handle."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pgmcp_http.db.errors import RoleRefused
from pgmcp_http.db.pool import Pool
from pgmcp_http.db.run import Transaction, transaction
from pgmcp_http.db.types import TypeNames
from pgmcp_http.identity import Caller

__all__ = ["Database"]


class Database:
    """Hands out transactions on pooled connections with the server's limits applied."""

    def __init__(self, *, pool: Pool, read_only: bool, timeout_ms: int,
                 search_path: tuple[str, ...] = ()) -> None:
        self.pool = pool
        self.read_only = read_only
        self.timeout_ms = timeout_ms
        self.search_path = search_path
        self.types = TypeNames()

    @contextmanager
    def transaction(self, *, timeout_ms: int | None = None, timeout_setting: str = "QUERY_TIMEOUT",
                    tag: str | None = None, caller: Caller | None = None,
                    comment: str | None = None) -> Iterator[Transaction]:
        """A read-only transaction (see :class:`Transaction`), always ended on exit; ``tag`` names it
        for cancellation (see :mod:`pgmcp_http.db.cancel`); it runs as ``caller``'s role (RoleRefused,
        before any connection is taken, for a caller that may not run SQL); ``comment`` follows each
        statement sent."""
        if caller is not None and caller.refusal is not None:
            raise RoleRefused(caller.refusal)
        with self.pool.connection() as conn, transaction(
            conn,
            read_only=True,
            server_read_only=self.read_only,
            timeout_ms=timeout_ms or self.timeout_ms,
            types=self.types,
            search_path=self.search_path,
            timeout_setting=timeout_setting,
            tag=tag,
            caller=caller,
            comment=comment,
        ) as tx:
            yield tx

    def ping(self, *, timeout_s: float) -> None:
        """Prove PostgreSQL answers within about ``timeout_s``: waits that long at most for a
        connection, then runs ``SELECT 1`` under a statement timeout of the same length."""
        with self.pool.connection(timeout_s=timeout_s) as conn, transaction(
            conn, read_only=True, server_read_only=True, timeout_ms=int(timeout_s * 1000), types=self.types,
            timeout_setting="health probe",
        ) as tx:
            tx.rows("SELECT 1")

    def close(self) -> None:
        self.pool.close()
