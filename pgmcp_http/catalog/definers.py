"""Which of the functions a statement calls are SECURITY DEFINER.

The guard sees function names, not what a function does. A SECURITY DEFINER
function runs with its owner's rights: one owned by a superuser can write a
server file with ``COPY ... TO`` even inside a read-only transaction. It can
be called by name, in attribute notation (``t.f``, ``(x).f``), as an
aggregate's support function or behind an operator: all are looked up.
(Casts and domain constraints that call one are not: revoke EXECUTE on
SECURITY DEFINER functions the server's role should not reach.) Callers
of such functions are refused unless the operator allows them by name
(``ALLOWED_DEFINER_FUNCTIONS``). The catalog's list of them is remembered
for a moment (see :class:`DefinerCache`).
"""

from __future__ import annotations

import threading
import time

from pgmcp_http.db import Transaction

__all__ = ["DefinerCache"]

_SQL = """
SELECT n.nspname AS schema, p.proname AS name
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.prosecdef OR EXISTS (  -- an aggregate whose transition, final or combine function is one
        SELECT 1 FROM pg_catalog.pg_aggregate a JOIN pg_catalog.pg_proc f
          ON f.oid = a.aggtransfn OR f.oid = a.aggfinalfn OR f.oid = a.aggcombinefn
        WHERE a.aggfnoid = p.oid AND f.prosecdef)
UNION ALL
SELECT n.nspname, 'operator ' || o.oprname
FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
JOIN pg_catalog.pg_proc f ON f.oid = o.oprcode
WHERE f.prosecdef
"""


class DefinerCache:
    """Every SECURITY DEFINER function and operator of the database (usually none), remembered per worker.

    Asking the catalog on every call cost a round trip on nearly every call
    (any ``=`` is an operator). The whole set is small, so it is read at most
    every ``ttl_s`` seconds, in the transaction of the call that finds it
    stale. A function made SECURITY DEFINER less than ``ttl_s`` ago may
    therefore be called before the server notices (the read-only transaction
    still stops its writes to tables); ``ttl_s=0`` asks every time.
    """

    def __init__(self, ttl_s: float = 2.0) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._names: frozenset[tuple[str, str]] = frozenset()
        self._read_at = float("-inf")

    def get(self, tx: Transaction) -> frozenset[tuple[str, str]]:
        with self._lock:
            if time.monotonic() - self._read_at < self.ttl_s:
                return self._names
        names = frozenset((row["schema"], row["name"]) for row in tx.rows(_SQL))
        with self._lock:
            self._names, self._read_at = names, time.monotonic()
        return names
