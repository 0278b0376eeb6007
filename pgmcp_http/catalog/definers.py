"""Which of the functions a statement calls are SECURITY DEFINER.

The guard sees function names, not what a function does. A SECURITY DEFINER
function runs with its owner's rights: one owned by a superuser can write a
server file with ``COPY ... TO`` even inside a read-only transaction. It can
be called by name, in attribute notation (``t.f``, ``(x).f``), as an
aggregate's support function or behind an operator: all are looked up.
(Casts and domain constraints that call one are not: revoke EXECUTE on
SECURITY DEFINER functions the server's role should not reach.) Callers
of such functions are refused unless the operator allows them by name
(``ALLOWED_DEFINER_FUNCTIONS``). The catalog is asked on every call that uses
functions (an index lookup by name, in the call's own transaction), so a
function created a moment ago is seen at once.
"""

from __future__ import annotations

from collections.abc import Iterable

from pgmcp_http.db import Transaction

__all__ = ["definer_functions"]

_SQL = """
SELECT n.nspname AS schema, p.proname AS name
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.proname = ANY(%(names)s::text[]::name[])
  AND (p.prosecdef OR EXISTS (  -- an aggregate whose transition, final or combine function is one
        SELECT 1 FROM pg_catalog.pg_aggregate a JOIN pg_catalog.pg_proc f
          ON f.oid = a.aggtransfn OR f.oid = a.aggfinalfn OR f.oid = a.aggcombinefn
        WHERE a.aggfnoid = p.oid AND f.prosecdef))
UNION ALL
SELECT n.nspname, 'operator ' || o.oprname
FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
JOIN pg_catalog.pg_proc f ON f.oid = o.oprcode
WHERE o.oprname = ANY(%(operators)s::text[]::name[]) AND f.prosecdef
"""


def definer_functions(tx: Transaction, names: Iterable[str],
                      operators: Iterable[str] = ()) -> frozenset[tuple[str, str]]:
    """(schema, name) of every SECURITY DEFINER function called one of ``names`` (aggregates count when
    one of their support functions is one), and (schema, ``operator <op>``) of every operator among
    ``operators`` whose function is one."""
    wanted = sorted(set(names))
    wanted_operators = sorted(set(operators))
    if not wanted and not wanted_operators:
        return frozenset()
    rows = tx.rows(_SQL, {"names": wanted, "operators": wanted_operators})
    return frozenset((row["schema"], row["name"]) for row in rows)
