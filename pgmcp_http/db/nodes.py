"""Which PostgreSQL node a connection is on, and whether that node is a primary or a standby.

libpq chooses the node (``host=a,b,c`` with ``target_session_attrs`` and
``load_balance_hosts``); this module only reads what it chose. The role comes
from the ``in_hot_standby`` parameter PostgreSQL 14+ reports to the client:
libpq keeps the latest value it was sent, and the server sends a new one with
its next reply after a promotion, so reading it after a call's statements
costs no round trip and says who answered them. The role a connection starts
with is asked once, with ``pg_is_in_recovery()``, when it opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg2.extensions as ext

from pgmcp_http.db import deferred_rollback

__all__ = ["PRIMARY", "STANDBY", "Node", "NodeConnection", "describe", "role_now"]

PRIMARY = "primary"
STANDBY = "standby"


@dataclass(frozen=True)
class Node:
    """A node as libpq reached it (``host`` is a name, an address or a socket directory) and its role."""

    host: str
    port: int
    role: str
    lag_s: float | None = None  # at most this far behind the primary (a standby, when measured)

    @property
    def name(self) -> str:
        """``host:port``, the label metrics, /health and the audit trail use."""
        return f"{self.host}:{self.port}"


class NodeConnection(ext.connection):
    """A psycopg2 connection that remembers its node, when it opened, and the ``in_hot_standby`` value it
    was greeted with (set by :func:`describe`)."""

    node: Node
    opened_at: float
    greeted: str | None
    # The server's own address (inet_server_addr/port; "local" over a Unix socket): several servers can
    # answer behind one name (a reader endpoint, a Kubernetes Service), and lag is theirs, not the name's.
    server: str = ""
    lag_s: float | None = None  # set per checkout by the stale-read guard (see pgmcp_http.db.replica_lag)
    # A finished read is still open, in a chain of folded reads begun then (see pgmcp_http.db.deferred_rollback).
    rollback_owed: float | None = None

    def cursor(self, *args: Any, **kwargs: Any) -> ext.cursor:
        """A cursor, after the rollback this connection owes (nothing runs inside a previous caller's
        transaction); :class:`~pgmcp_http.db.run.Transaction` takes the debt first and folds it in."""
        if self.rollback_owed is not None:
            deferred_rollback.settle(self)
        return super().cursor(*args, **kwargs)


def describe(conn: NodeConnection, *, now: float) -> Node:
    """Note the node ``conn`` is on, asking ``pg_is_in_recovery()`` and the server's address once.

    The greeting's ``in_hot_standby`` is not trusted on its own: a pooler
    (PgBouncer) repeats the value its first server connection reported, which
    is stale after a failover. What counts later is a *change* of the reported
    value, which only a real ParameterStatus message makes (see
    :func:`role_now`).
    """
    with conn.cursor() as cur:
        cur.execute("SELECT pg_catalog.pg_is_in_recovery(), "
                    "coalesce(host(pg_catalog.inet_server_addr()) || ':' || pg_catalog.inet_server_port(), 'local')")
        row = cur.fetchone()
    if not conn.autocommit:
        conn.rollback()
    conn.greeted = conn.info.parameter_status("in_hot_standby")
    conn.opened_at = now
    conn.server = str(row[1]) if row else ""
    conn.node = Node(host=conn.info.host or "", port=int(conn.info.port or 0),
                     role=STANDBY if row and row[0] else PRIMARY)
    return conn.node


def role_now(conn: NodeConnection) -> str:
    """The role of ``conn``'s node as of its last reply, without a round trip: the role found at open,
    unless PostgreSQL has since reported a different ``in_hot_standby`` (a promotion, a demotion)."""
    status = conn.info.parameter_status("in_hot_standby")
    if status is None or status == conn.greeted:
        return conn.node.role
    return STANDBY if status == "on" else PRIMARY
