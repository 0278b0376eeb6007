"""Which of the functions a statement calls are SECURITY DEFINER.

The guard sees function names, not what a function does. A SECURITY DEFINER
function runs with its owner's rights: one owned by a superuser can write a
server file with ``COPY ... TO`` even inside a read-only transaction. Callers
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
WHERE p.proname = ANY(%(names)s::text[]::name[]) AND p.prosecdef
"""


def definer_functions(tx: Transaction, names: Iterable[str]) -> frozenset[tuple[str, str]]:
    """(schema, name) of every SECURITY DEFINER function called one of ``names``."""
    wanted = sorted(set(names))
    if not wanted:
        return frozenset()
    return frozenset((row["schema"], row["name"]) for row in tx.rows(_SQL, {"names": wanted}))
