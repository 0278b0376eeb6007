"""Ending a finished read-only transaction in the next call's first round trip.

A tool call's read-only transaction keeps nothing, yet ending it costs a
``ROLLBACK`` round trip the caller waits for and PostgreSQL spends CPU on.
With ``ROLLBACK_DELAY_MS`` above 0 (the default is 5) a read that ended
cleanly is left open on its pooled connection and marked as owing a rollback
(:func:`owe`); the next transaction on that connection sends ``ROLLBACK;``
in front of its ``BEGIN`` and first statement, one round trip instead of two
(measured: ``bench/results/2026-12-07.md``, "Issue 24").

Until then the finished transaction holds its AccessShare locks and its
snapshot (the backend's xmin), so the pool rolls back any connection that
owes one and has sat idle for the delay (:meth:`Pool.settle_idle`, within
about twice the delay). A connection in constant use would never end a
transaction, and a transaction-mode pooler (PgBouncer) would keep its server
connection from every other client: so a chain of folded reads is cut, with a
``ROLLBACK`` of its own, once it is :data:`CHAIN_DELAYS` delays old (20 ms by
default). Nothing of the previous caller reaches the next one:
its role and settings were all ``SET LOCAL``, so the ``ROLLBACK`` that comes
first in the next caller's query string undoes them before its ``BEGIN``; any
other use of the connection (a cursor opened outside a transaction, such as the
replica-lag measurement) rolls back first (:func:`settle`, called by
:meth:`NodeConnection.cursor`). A write is never left open: a ``COMMIT`` is
always sent at once, and failed or read-write transactions are rolled back at
once as before.
"""

from __future__ import annotations

import psycopg2.extensions as ext

__all__ = ["CHAIN_DELAYS", "chain_limit_s", "owe", "owes", "settle", "take"]

# How many delays a chain of folded reads may last before one is rolled back at once: each connection pays
# one extra round trip per 4 delays of constant use (about 1 call in 10 at 500 calls/s per connection).
CHAIN_DELAYS = 4


def chain_limit_s(delay_s: float) -> float:
    """How long a connection may go from one folded read to the next without ending a transaction."""
    return CHAIN_DELAYS * delay_s


def owe(conn: ext.connection, since: float) -> None:
    """Mark ``conn`` (idle in a finished read-only transaction) as owing a rollback; ``since`` is when its
    chain of folded reads began (``time.monotonic()``)."""
    conn.rollback_owed = since  # type: ignore[attr-defined]


def owes(conn: ext.connection) -> bool:
    """Whether ``conn`` owes a rollback (connections that are not ours never do)."""
    return getattr(conn, "rollback_owed", None) is not None


def take(conn: ext.connection) -> float | None:
    """Take the debt: the caller promises to send ``ROLLBACK`` before anything else on ``conn``. Returns when
    the chain began, or None when nothing was owed."""
    since: float | None = getattr(conn, "rollback_owed", None)
    if since is not None:
        conn.rollback_owed = None  # type: ignore[attr-defined]
    return since


def settle(conn: ext.connection) -> None:
    """Send the owed ``ROLLBACK`` now, in a round trip of its own (errors propagate)."""
    if take(conn) is not None:
        with ext.connection.cursor(conn) as cur:
            cur.execute("ROLLBACK")
