"""One relation in depth: columns, constraints, indexes, triggers, policies, references, statistics."""

from __future__ import annotations

import difflib
from typing import Any

from pgmcp_http.catalog.activity import activity
from pgmcp_http.catalog.hierarchy import hierarchy
from pgmcp_http.catalog.relations import RELATION_KINDS
from pgmcp_http.catalog.visibility import ACCESSIBLE_RELATION_SQL, Visibility
from pgmcp_http.db import Transaction

__all__ = ["NotFound", "describe_relation", "find_relation"]


class NotFound(LookupError):
    """No visible relation of that name; the message suggests close ones."""


_FIND_SQL = f"""
SELECT c.oid::int AS oid, n.nspname AS schema, c.relname AS name
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND n.nspname = %(schema)s AND c.relname = %(name)s
  AND {ACCESSIBLE_RELATION_SQL}
"""

_CANDIDATES_SQL = f"""
SELECT n.nspname AS schema, c.relname AS name
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%'
  AND (%(allowed)s::text[] IS NULL OR n.nspname = ANY(%(allowed)s::text[]))
  AND {ACCESSIBLE_RELATION_SQL}
"""

_RELATION_SQL = """
SELECT n.nspname AS schema, c.relname AS name, c.relkind AS relkind,
       pg_catalog.pg_get_userbyid(c.relowner) AS owner,
       pg_catalog.obj_description(c.oid, 'pg_class') AS comment,
       c.relrowsecurity AS row_security,
       c.relforcerowsecurity AS force_row_security,
       pg_catalog.has_table_privilege(c.oid, 'SELECT') AS can_select,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid, true) END AS definition,
       CASE WHEN c.relkind = 'm' THEN c.relispopulated END AS populated
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = %(oid)s
"""

_COLUMNS_SQL = """
SELECT a.attname AS name,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
       NOT a.attnotnull AS nullable,
       CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END AS default,
       NULLIF(a.attidentity, '') AS identity,
       CASE WHEN a.attgenerated <> '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END AS generated,
       CASE WHEN a.attcollation <> t.typcollation THEN co.collname END AS collation,
       pg_catalog.col_description(a.attrelid, a.attnum) AS comment,
       CASE WHEN t.typtype = 'e' THEN
            (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum e
             WHERE e.enumtypid = t.oid) END AS enum_labels
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
WHERE a.attrelid = %(oid)s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_CONSTRAINTS_SQL = """
SELECT con.conname AS name, con.contype AS type,
       pg_catalog.pg_get_constraintdef(con.oid, true) AS definition,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
             ORDER BY k.ord) AS columns,
       fn.nspname AS ref_schema, fc.relname AS ref_table,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
             ORDER BY k.ord) AS ref_columns
FROM pg_catalog.pg_constraint con
LEFT JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.conrelid = %(oid)s
ORDER BY con.contype, con.conname
"""

_REFERENCED_BY_SQL = f"""
SELECT n.nspname AS schema, c.relname AS table, con.conname AS name,
       pg_catalog.pg_get_constraintdef(con.oid, true) AS definition
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE con.confrelid = %(oid)s AND con.contype = 'f' AND {ACCESSIBLE_RELATION_SQL}
ORDER BY 1, 2, 3
"""

_INDEXES_SQL = """
SELECT ic.relname AS name, am.amname AS method, i.indisunique AS unique, i.indisprimary AS primary,
       i.indisvalid AS valid, pg_catalog.pg_get_indexdef(i.indexrelid, 0, true) AS definition,
       ARRAY(SELECT pg_catalog.pg_get_indexdef(i.indexrelid, k.n::int, true)
             FROM generate_series(1, i.indnkeyatts) k(n)) AS columns,
       pg_catalog.pg_get_expr(i.indpred, i.indrelid, true) AS predicate,
       pg_catalog.pg_relation_size(i.indexrelid) AS bytes,
       s.idx_scan AS scans
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_am am ON am.oid = ic.relam
LEFT JOIN pg_catalog.pg_stat_all_indexes s ON s.indexrelid = i.indexrelid
WHERE i.indrelid = %(oid)s
ORDER BY i.indisprimary DESC, ic.relname
"""

_TRIGGERS_SQL = """
SELECT t.tgname AS name, pg_catalog.pg_get_triggerdef(t.oid, true) AS definition,
       CASE t.tgenabled WHEN 'O' THEN 'enabled' WHEN 'D' THEN 'disabled' WHEN 'R' THEN 'replica only'
                        WHEN 'A' THEN 'always' END AS enabled,
       pn.nspname AS function_schema, p.proname AS function_name
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
WHERE t.tgrelid = %(oid)s AND NOT t.tgisinternal
ORDER BY t.tgname
"""

_POLICIES_SQL = """
SELECT pol.polname AS name, pol.polpermissive AS permissive,
       CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                       WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS command,
       CASE WHEN pol.polroles = '{0}' THEN ARRAY['public']
            ELSE ARRAY(SELECT r.rolname::text FROM pg_catalog.pg_roles r WHERE r.oid = ANY(pol.polroles)
                       ORDER BY 1) END AS roles,
       pg_catalog.pg_get_expr(pol.polqual, pol.polrelid, true) AS using,
       pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid, true) AS with_check
FROM pg_catalog.pg_policy pol
WHERE pol.polrelid = %(oid)s
ORDER BY pol.polname
"""

def find_relation(tx: Transaction, visibility: Visibility, *, schema: str, name: str) -> int:
    """The OID of ``schema.name`` if it exists and is visible; else NotFound with suggestions.

    Hidden and missing relations get the same answer, so the configuration's
    secrets are not revealed by the difference.
    """
    if visibility.table_visible(schema, name):
        found = tx.rows(_FIND_SQL, visibility.params(schema=schema, name=name))
        if found:
            return int(found[0]["oid"])
    candidates = [f"{row['schema']}.{row['name']}"
                  for row in tx.rows(_CANDIDATES_SQL, visibility.params())
                  if visibility.table_visible(row["schema"], row["name"])]
    wanted = f"{schema}.{name}"
    close = difflib.get_close_matches(wanted, candidates, n=3, cutoff=0.6)
    close += [c for c in candidates if c.split(".", 1)[1].lower() == name.lower() and c not in close]
    message = f"no table or view named {wanted}"
    if close:
        message += "; did you mean " + " or ".join(close[:3]) + "?"
    else:
        message += "; use list_tables to see what exists"
    raise NotFound(message)


def describe_relation(tx: Transaction, oid: int, visibility: Visibility) -> dict[str, Any]:
    """Everything a person asks about one relation, from the catalogs.

    Related tables that the configuration hides (foreign-key targets,
    referencing tables, partitions, parents) are not named.
    """
    rel = tx.rows(_RELATION_SQL, {"oid": oid})[0]
    kind = RELATION_KINDS[rel["relkind"]]
    result: dict[str, Any] = {
        "schema": rel["schema"],
        "name": rel["name"],
        "kind": kind,
        "owner": rel["owner"],
        "comment": rel["comment"],
        "can_select": rel["can_select"],
        "columns": [_column(col) for col in tx.rows(_COLUMNS_SQL, {"oid": oid})],
    }
    result.update(_constraints(tx, oid, visibility))
    result["indexes"] = tx.rows(_INDEXES_SQL, {"oid": oid}) if kind != "view" else []
    result["triggers"] = tx.rows(_TRIGGERS_SQL, {"oid": oid})
    if rel["definition"] is not None:
        result["definition"] = rel["definition"]
    if rel["populated"] is not None:
        result["populated"] = rel["populated"]
    result["row_security"] = {"enabled": rel["row_security"], "forced": rel["force_row_security"],
                              "policies": tx.rows(_POLICIES_SQL, {"oid": oid})}
    result.update(hierarchy(tx, visibility, oid))
    if kind in ("table", "materialized view", "partitioned table"):
        result["statistics"] = activity(tx, oid)
    return result


def _constraints(tx: Transaction, oid: int, visibility: Visibility) -> dict[str, Any]:
    constraints = tx.rows(_CONSTRAINTS_SQL, {"oid": oid})
    primary = [c for c in constraints if c["type"] == "p"]
    referenced_by = tx.rows(_REFERENCED_BY_SQL, visibility.params(oid=oid))
    return {
        "primary_key": primary[0]["columns"] if primary else None,
        "unique_constraints": [{"name": c["name"], "columns": c["columns"]} for c in constraints if c["type"] == "u"],
        "check_constraints": [{"name": c["name"], "definition": c["definition"]}
                              for c in constraints if c["type"] == "c"],
        "exclusion_constraints": [{"name": c["name"], "definition": c["definition"]}
                                  for c in constraints if c["type"] == "x"],
        "foreign_keys": [_foreign_key(c, visibility) for c in constraints if c["type"] == "f"],
        "referenced_by": [ref for ref in referenced_by if visibility.table_visible(ref["schema"], ref["table"])],
    }


def _foreign_key(con: dict[str, Any], visibility: Visibility) -> dict[str, Any]:
    if not visibility.table_visible(con["ref_schema"], con["ref_table"]):
        # The constraint is this table's own, but its target is hidden: keep the columns, not the name.
        return {"name": con["name"], "columns": con["columns"], "references": None,
                "note": "references a table this server does not expose"}
    return {"name": con["name"], "columns": con["columns"],
            "references": {"schema": con["ref_schema"], "table": con["ref_table"], "columns": con["ref_columns"]},
            "definition": con["definition"]}


def _column(col: dict[str, Any]) -> dict[str, Any]:
    entry = {key: value for key, value in col.items() if value is not None or key in ("default", "comment")}
    if entry.get("identity"):
        entry["identity"] = {"a": "always", "d": "by default"}.get(entry["identity"], entry["identity"])
    return entry
