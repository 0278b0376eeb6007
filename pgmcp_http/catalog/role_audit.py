"""What the connected role could do if every other layer failed.

The guard and the read-only transaction stop writes, but the last layer is
the role itself: a superuser bypasses privilege checks and row-level
security, and a role that may write turns any future bug into data loss.
At start-up the server asks PostgreSQL once and warns (it does not refuse to
start: some operators knowingly point it at a development database).
"""

from __future__ import annotations

from typing import Any

from pgmcp_http.db import Transaction

__all__ = ["RISKY_ROLE_MEMBERSHIPS", "role_warnings"]

RISKY_ROLE_MEMBERSHIPS = (
    "pg_write_server_files", "pg_execute_server_program", "pg_read_server_files", "pg_write_all_data",
    "pg_signal_backend", "pg_checkpoint",
)

_AUDIT_SQL = """
SELECT r.rolname AS role, r.rolsuper AS superuser, r.rolbypassrls AS bypass_rls,
       r.rolcreaterole AS create_role, r.rolcreatedb AS create_db, r.rolreplication AS replication,
       ARRAY(SELECT g.rolname FROM pg_catalog.pg_roles g
             WHERE g.rolname = ANY(%(risky)s) AND pg_catalog.pg_has_role(r.oid, g.oid, 'USAGE')
             ORDER BY g.rolname) AS memberships,
       ARRAY(SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname)
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
               AND pg_catalog.has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
             ORDER BY 1 LIMIT 6) AS writable_tables,
       ARRAY(SELECT pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_namespace n
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
               AND pg_catalog.has_schema_privilege(n.oid, 'CREATE')
             ORDER BY 1) AS creatable_schemas
FROM pg_catalog.pg_roles r
WHERE r.rolname = current_user
"""

_FIX = "connect as a dedicated read-only role (scripts/create-readonly-role.sql)"


def role_warnings(tx: Transaction, *, read_only: bool) -> list[str]:
    """One sentence per risk the connected role carries; empty when it is a plain reader."""
    rows = tx.rows(_AUDIT_SQL, {"risky": list(RISKY_ROLE_MEMBERSHIPS)})
    if not rows:
        return []
    return _warnings(rows[0], read_only=read_only)


def _warnings(role: dict[str, Any], *, read_only: bool) -> list[str]:
    name = role["role"]
    if role["superuser"]:
        return [f"the database role {name} is a superuser: it bypasses privileges and row-level security, and "
                f"only the guard and the read-only transaction stand between a caller and the data; {_FIX}"]
    found: list[str] = []
    powers = [label for key, label in (("bypass_rls", "BYPASSRLS"), ("create_role", "CREATEROLE"),
                                        ("create_db", "CREATEDB"), ("replication", "REPLICATION")) if role[key]]
    if powers:
        found.append(f"the database role {name} has {', '.join(powers)}; {_FIX}")
    if role["memberships"]:
        found.append(f"the database role {name} is a member of {', '.join(role['memberships'])}; {_FIX}")
    if read_only and role["writable_tables"]:
        tables = role["writable_tables"]
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        found.append(f"the database role {name} may write to tables ({shown}); READ_ONLY=true keeps the server "
                     f"from writing, but the role is the layer that holds if everything else fails; {_FIX}")
    if read_only and role["creatable_schemas"]:
        found.append(f"the database role {name} may CREATE objects in schema(s) "
                     f"{', '.join(role['creatable_schemas'])}; {_FIX}")
    return found
