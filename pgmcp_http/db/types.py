"""Type names for result columns, looked up once per worker.

A cursor's description carries type OIDs; people and agents want names
(``integer``, ``timestamp with time zone``). Built-in names are known up
front; others (enums, domains, extension types) are looked up in ``pg_type``
the first time they appear and remembered for the life of the pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

__all__ = ["TypeNames"]

_BUILTIN: dict[int, str] = {
    16: "boolean", 17: "bytea", 18: '"char"', 19: "name", 20: "bigint", 21: "smallint", 23: "integer",
    25: "text", 26: "oid", 114: "json", 142: "xml", 650: "cidr", 700: "real", 701: "double precision",
    774: "macaddr8", 790: "money", 829: "macaddr", 869: "inet", 1042: "character", 1043: "character varying",
    1082: "date", 1083: "time without time zone", 1114: "timestamp without time zone",
    1184: "timestamp with time zone", 1186: "interval", 1266: "time with time zone", 1560: "bit",
    1562: "bit varying", 1700: "numeric", 2950: "uuid", 3802: "jsonb", 3614: "tsvector", 705: "unknown",
    1000: "boolean[]", 1001: "bytea[]", 1005: "smallint[]", 1007: "integer[]", 1016: "bigint[]",
    1009: "text[]", 1015: "character varying[]", 1021: "real[]", 1022: "double precision[]",
    1231: "numeric[]", 1182: "date[]", 1115: "timestamp without time zone[]",
    1185: "timestamp with time zone[]", 1187: "interval[]", 2951: "uuid[]", 199: "json[]", 3807: "jsonb[]",
    1041: "inet[]", 1028: "oid[]", 1003: "name[]",
}


class TypeNames:
    """OID → type name, shared by the threads of one worker."""

    def __init__(self) -> None:
        self._names = dict(_BUILTIN)
        self._lock = threading.Lock()

    def names(self, oids: Iterable[int], lookup: Callable[[list[int]], dict[int, str]]) -> dict[int, str]:
        """Names for ``oids``, calling ``lookup`` once for those not known yet."""
        wanted = set(oids)
        with self._lock:
            missing = [oid for oid in wanted if oid not in self._names]
        if missing:
            found = lookup(sorted(missing))
            with self._lock:
                self._names.update(found)
        with self._lock:
            return {oid: self._names.get(oid, str(oid)) for oid in wanted}
