"""What the guard allows, as plain data built once from the settings."""

from __future__ import annotations

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
    """

    read_only: bool = True
    allowed_schemas: tuple[str, ...] = ()
    blocked_tables: tuple[str, ...] = ()
    max_length: int = 10_000

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
