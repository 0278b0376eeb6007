"""Which schemas and tables the configuration lets callers see.

When any role mapping is configured, every caller sees only what the role
its SQL runs as may use, the way ``information_schema`` shows objects: schemas
with USAGE, relations with some privilege on them or on one of their columns,
functions with EXECUTE. That includes a caller with no role of its own, which
runs as the login role: with a NOINHERIT login role (the recommended set-up)
it can read nothing, so it is shown nothing. Without any mapping the login
role is every caller's role and the filters change nothing, as before roles
existed. The ``ACCESSIBLE_*_SQL`` fragments say so inside the catalog queries
(they expect ``n`` for pg_namespace, ``c`` for pg_class, ``p`` for pg_proc,
and the parameter ``by_privilege``, which :meth:`Visibility.params` gives).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pgmcp_http.sqlguard import GuardPolicy

__all__ = ["ACCESSIBLE_FUNCTION_SQL", "ACCESSIBLE_RELATION_SQL", "ACCESSIBLE_SCHEMA_SQL", "HIDDEN_SCHEMA_PATTERNS",
           "PARENT_SQL", "Visibility", "accessible_relation_sql"]

HIDDEN_SCHEMA_PATTERNS = ("pg_catalog", "information_schema", "pg_toast%", "pg_temp_%")

ACCESSIBLE_SCHEMA_SQL = "(NOT %(by_privilege)s OR pg_catalog.has_schema_privilege(n.oid, 'USAGE'))"


def accessible_relation_sql(relation: str = "c.oid", namespace: str = "n.oid") -> str:
    """SQL: the caller's role may use the relation ``relation`` (an oid) in schema ``namespace`` (an oid or a
    name), or visibility is not by privilege (needs the ``by_privilege`` parameter)."""
    return (f"(NOT %(by_privilege)s OR (pg_catalog.has_schema_privilege({namespace}, 'USAGE') AND "
            f"(pg_catalog.has_table_privilege({relation}, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, "
            f"TRIGGER') OR pg_catalog.has_any_column_privilege({relation}, 'SELECT, INSERT, UPDATE, REFERENCES'))))")


ACCESSIBLE_RELATION_SQL = accessible_relation_sql()
PARENT_SQL = ("(SELECT pn.nspname || '.' || pc.relname FROM pg_catalog.pg_inherits i "
              "JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent "
              "JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid)")
"""``schema.name`` of a partition's parent (``c`` is the partition): a partition whose parent is hidden is
listed on its own rather than folded under a parent nobody sees."""
ACCESSIBLE_FUNCTION_SQL = ("(NOT %(by_privilege)s OR (pg_catalog.has_schema_privilege(n.oid, 'USAGE') AND "
                           "pg_catalog.has_function_privilege(p.oid, 'EXECUTE')))")


@dataclass(frozen=True)
class Visibility:
    """ALLOWED_SCHEMAS and BLOCKED_TABLES as the catalog code applies them; ``by_privilege`` when a role
    mapping is configured (each caller then sees what its role, or the login role, may use)."""

    allowed_schemas: tuple[str, ...]
    blocked_tables: tuple[str, ...]
    by_privilege: bool = False
    hidden: frozenset[tuple[str, str]] = frozenset()
    """Views, partitions and parents that return a blocked table's rows (see sqlguard/lineage.py)."""
    hidden_functions: frozenset[tuple[str, str]] = frozenset()
    """Functions (schema, name) whose BEGIN ATOMIC body returns a blocked table's rows."""

    @classmethod
    def from_policy(cls, policy: GuardPolicy, *, by_privilege: bool = False) -> Visibility:
        return cls(allowed_schemas=policy.allowed_schemas, blocked_tables=policy.blocked_tables,
                   by_privilege=by_privilege)

    def hiding(self, relations: frozenset[tuple[str, str]],
               functions: frozenset[tuple[str, str]] = frozenset()) -> Visibility:
        """The same rules, with ``relations`` and ``functions`` hidden too."""
        return replace(self, hidden=relations, hidden_functions=functions) if relations or functions else self

    def function_visible(self, schema: str, name: str) -> bool:
        return self.schema_visible(schema) and (schema, name) not in self.hidden_functions

    def params(self, **params: object) -> dict[str, object]:
        """``params`` plus what the catalog queries' visibility filters read (``allowed``, ``by_privilege``)."""
        return {"allowed": self.schema_filter(), "by_privilege": self.by_privilege, **params}

    def schema_visible(self, schema: str) -> bool:
        if schema in ("pg_catalog", "information_schema") or schema.startswith(("pg_toast", "pg_temp_")):
            return False
        return not self.allowed_schemas or schema in self.allowed_schemas

    def table_visible(self, schema: str, table: str) -> bool:
        if not self.schema_visible(schema):
            return False
        if (schema, table) in self.hidden:
            return False
        return not any(entry in (table, f"{schema}.{table}") for entry in self.blocked_tables)

    def never_shown(self) -> list[str]:
        """BLOCKED_TABLES' entries and the hidden relations as ``schema.table``, for one SQL array."""
        return [*self.blocked_tables, *sorted(f"{schema}.{table}" for schema, table in self.hidden)]

    def blocked_lists(self) -> tuple[list[str], list[str]]:
        """What is never shown, as SQL arrays: names blocked in every schema, and ``schema.table`` entries
        (BLOCKED_TABLES' own and the hidden relations')."""
        names = [entry for entry in self.blocked_tables if "." not in entry]
        qualified = [entry for entry in self.blocked_tables if "." in entry]
        qualified += sorted(f"{schema}.{table}" for schema, table in self.hidden)
        return names, qualified

    def schema_filter(self) -> list[str] | None:
        """The schema list for ``= ANY(%s)`` filters; None means no restriction."""
        return list(self.allowed_schemas) if self.allowed_schemas else None
