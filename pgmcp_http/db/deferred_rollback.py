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
about twice the delay). Nothing of the previous caller reaches the next one:
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

__all__ = ["owe", "owes", "settle", "take"]


def owe(conn: ext.connection) -> None:
    """Mark ``conn`` (idle in a finished read-only transaction) as owing a rollback."""
    conn.rollback_owed = True  # type: ignore[attr-defined]


def owes(conn: ext.connection) -> bool:
    """Whether ``conn`` owes a rollback (connections that are not ours never do)."""
    return getattr(conn, "rollback_owed", False)


def take(conn: ext.connection) -> bool:
    """Take the debt: the caller promises to send ``ROLLBACK`` before anything else on ``conn``."""
    if not getattr(conn, "rollback_owed", False):
        return False
    conn.rollback_owed = False  # type: ignore[attr-defined]
    return True


def settle(conn: ext.connection) -> None:
    """Send the owed ``ROLLBACK`` now, in a round trip of its own (errors propagate)."""
    if take(conn):
        with ext.connection.cursor(conn) as cur:
            cur.execute("ROLLBACK")
