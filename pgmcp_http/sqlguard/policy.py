"""What the guard allows, as plain data built once from the settings."""

from __future__ import annotations

import functools
from dataclasses import dataclass

__all__ = ["SYSTEM_SCHEMAS", "GuardPolicy"]

SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema"})
"""Schemas always readable (apart from the denied relations), so troubleshooting queries work."""


@dataclass(frozen=True, kw_only=True)
class GuardPolicy:
    """The rules for one server.

    ``allowed_schemas`` empty means every schema. When it is set, the server
    also sets each transaction's ``search_path`` to exactly these schemas, so an
    unqualified name can only resolve into them (or ``pg_catalog``); that is
    the search path the guard reasons with.

    ``blocked_tables`` entries are ``table`` (in any schema) or
    ``schema.table``; names are compared exactly as PostgreSQL stores them
    (unquoted identifiers are lower case).

    ``allowed_definer_functions`` (``name`` or ``schema.name``) are the
    SECURITY DEFINER functions callers may use; every other one is refused,
    since it runs with its owner's rights (a superuser-owned one may write
    server files even inside a read-only transaction).
    """

    read_only: bool = True
    allowed_schemas: tuple[str, ...] = ()
    blocked_tables: tuple[str, ...] = ()
    allowed_definer_functions: tuple[str, ...] = ()
    max_length: int = 10_000

    @property
    def restricts_relations(self) -> bool:
        """Whether any relation is kept out (then views, partitions and parents over one are too)."""
        return bool(self.blocked_tables or self.allowed_schemas)

    def schema_allowed(self, schema: str) -> bool:
        return schema in SYSTEM_SCHEMAS or not self.allowed_schemas or schema in self.allowed_schemas

    def blocked_entry(self, schema: str | None, table: str) -> str | None:
        """The BLOCKED_TABLES entry that covers ``schema.table``, if any.

        An unqualified ``table`` resolves through the search path: when
        ALLOWED_SCHEMAS is set that is exactly those schemas (the transaction
        sets it), so an entry in another schema cannot be reached; otherwise the
        role's search path is unknown here and every entry with that table name
        counts.
        """
        for entry in self.blocked_tables:
            entry_schema, _, entry_table = entry.rpartition(".")
            if entry_table != table:
                continue
            if not entry_schema or entry_schema == schema:
                return entry
            if schema is None and (not self.allowed_schemas or entry_schema in self.allowed_schemas):
                return entry
        return None

    def definer_refusal(self, called: frozenset[tuple[str | None, str]],
                        definers: frozenset[tuple[str, str]]) -> str | None:
        """Why a statement calling ``called`` may not run, given the database's SECURITY DEFINER
        functions (``definers``, as (schema, name)); None when it may."""
        by_name = _by_name(definers)
        for schema, name in sorted(called, key=lambda pair: (pair[0] or "", pair[1])):
            for definer_schema, definer_name in by_name.get(name, ()):
                reachable = definer_schema == schema or (schema is None and (
                    not self.allowed_schemas or definer_schema in self.allowed_schemas))
                if reachable and not self._definer_allowed(definer_schema, definer_name):
                    what = (f"{definer_name.replace('operator ', 'operator ' + definer_schema + '.', 1)} runs a "
                            "function that is SECURITY DEFINER" if definer_name.startswith("operator ")
                            else f"function {definer_schema}.{definer_name} is SECURITY DEFINER")
                    return (f"{what}: it runs with its owner's rights, which the read-only checks cannot bound; "
                            "an operator may allow it with ALLOWED_DEFINER_FUNCTIONS")
        return None

    def _definer_allowed(self, schema: str, name: str) -> bool:
        return name in self.allowed_definer_functions or f"{schema}.{name}" in self.allowed_definer_functions


@functools.lru_cache(maxsize=8)
def _by_name(definers: frozenset[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """The SECURITY DEFINER functions by name, sorted: built once per list the cache hands out (a call names
    a few functions; the database may have hundreds of definers)."""
    index: dict[str, list[tuple[str, str]]] = {}
    for schema, name in sorted(definers):
        index.setdefault(name, []).append((schema, name))
    return index
