"""The guard's rules as data: statements, functions and relations it refuses.

A read-only transaction stops writes to tables, but not these: reading server
files, executing SQL held in a string, signalling other backends, changing
settings, taking locks that outlive the call on a pooled connection, WAL and
replication control, or reading the sampled data values in ``pg_statistic``.
Functions are matched by name whatever their schema, so quoting or
``pg_catalog.`` qualification cannot slip past.
"""

from __future__ import annotations

import re

__all__ = [
    "DENIED_FUNCTION_PREFIXES",
    "DENIED_FUNCTIONS",
    "DENIED_RELATIONS",
    "READ_STATEMENTS",
    "WRITE_STATEMENTS",
    "denied_function_reason",
    "statement_label",
]

READ_STATEMENTS = frozenset({"SelectStmt", "VariableShowStmt"})
WRITE_STATEMENTS = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})

# Exact names, grouped by why they are refused.
_DENIED: dict[str, tuple[str, ...]] = {
    "reads or lists files on the database server": (
        "pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_file_write", "pg_file_rename",
        "pg_file_unlink", "pg_file_sync", "pg_logdir_ls", "pg_current_logfile", "pg_hba_file_rules",
        "pg_ident_file_mappings", "pg_show_all_file_settings", "pg_config",
    ),
    "executes SQL given as a string": (
        "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "table_to_xml",
        "table_to_xmlschema", "table_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema",
        "schema_to_xml", "schema_to_xmlschema", "schema_to_xml_and_xmlschema", "database_to_xml",
        "database_to_xmlschema", "database_to_xml_and_xmlschema", "ts_stat", "ts_rewrite", "query_to_json",
        "crosstab", "crosstab2", "crosstab3", "crosstab4", "connectby",
    ),
    "reads large objects (server files and stored blobs)": ("loread", "lowrite"),
    "signals or controls other server processes": (
        "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_promote",
        "pg_log_backend_memory_contexts", "pg_signal_backend",
    ),
    "changes settings": ("set_config",),
    "changes the session's random seed, which the next caller on a pooled connection would inherit": (
        "setseed",),
    "changes sequences": ("nextval", "setval"),
    "sends notifications": ("pg_notify",),
    "assigns a transaction id": ("txid_current", "pg_current_xact_id"),
    "controls WAL, backups or replication": (
        "pg_switch_wal", "pg_create_restore_point", "pg_backup_start", "pg_backup_stop", "pg_start_backup",
        "pg_stop_backup", "pg_wal_replay_pause", "pg_wal_replay_resume", "pg_drop_replication_slot",
        "pg_replication_slot_advance", "pg_logical_emit_message", "pg_import_system_collations",
        "pg_log_standby_snapshot", "pg_sync_replication_slots", "pg_switch_xlog", "pg_xlog_replay_pause",
        "pg_xlog_replay_resume", "pg_nextoid",
    ),
    "resets statistics": ("pg_stat_statements_reset",),
    "reads raw table pages": (
        "get_raw_page", "heap_page_items", "heap_page_item_attrs", "bt_page_items", "bt_metap",
        "brin_page_items", "gin_leafpage_items", "page_header", "pg_truncate_visibility_map",
        "page_checksum", "fsm_page_contents", "tuple_data_split", "heap_tuple_infomask_flags", "bt_page_stats",
        "bt_multi_page_stats", "brin_page_type", "brin_metapage_info", "brin_revmap_data", "gin_metapage_info",
        "gin_page_opaque_info", "gist_page_opaque_info", "gist_page_items", "gist_page_items_bytea",
        "hash_page_type", "hash_page_stats", "hash_page_items", "hash_bitmap_info", "hash_metapage_info",
        "pgrowlocks",
    ),
}

DENIED_FUNCTIONS: dict[str, str] = {name: why for why, names in _DENIED.items() for name in names}

DENIED_FUNCTION_PREFIXES: tuple[tuple[str, str], ...] = (
    ("pg_ls_", "lists directories on the database server"),
    ("lo_", "works on large objects (server files and stored blobs)"),
    ("pg_advisory_", "takes advisory locks that can outlive the call"),
    ("pg_try_advisory_", "takes advisory locks that can outlive the call"),
    ("dblink", "connects to other databases"),
    ("postgres_fdw_", "controls foreign-server connections"),
    ("pg_stat_reset", "resets statistics"),
    ("pg_create_", "creates replication slots or restore points"),
    ("pg_copy_", "copies replication slots"),
    ("pg_logical_slot_", "consumes logical replication changes"),
    ("pg_replication_origin_", "controls replication origins"),
    ("binary_upgrade_", "is reserved for pg_upgrade"),
    ("hypopg", "changes hypothetical indexes that outlive the call on a pooled connection (analyze_query "
               "tries candidate indexes itself)"),
)

# System relations (pg_catalog or information_schema) that expose data values or credentials
# whatever ALLOWED_SCHEMAS says.
DENIED_RELATIONS: dict[str, str] = {
    "pg_statistic": "holds sampled column values",
    "pg_stats": "holds sampled column values",
    "pg_stats_ext": "holds sampled column values",
    "pg_stats_ext_exprs": "holds sampled column values",
    "pg_statistic_ext_data": "holds sampled column values",
    "pg_authid": "holds password hashes",
    "pg_shadow": "holds password hashes",
    "pg_user_mapping": "holds foreign-server credentials",
    "pg_user_mappings": "holds foreign-server credentials",
    "user_mappings": "holds foreign-server credentials",
    "user_mapping_options": "holds foreign-server credentials",
    "_pg_user_mappings": "holds foreign-server credentials",
    "pg_largeobject": "holds large-object contents",
    "pg_file_settings": "shows server configuration files",
    "pg_hba_file_rules": "shows server configuration files",
    "pg_ident_file_mappings": "shows server configuration files",
    "pg_config": "shows how and where the server was built",
}

_STATEMENT_LABELS: dict[str, str] = {
    "InsertStmt": "INSERT", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE", "MergeStmt": "MERGE",
    "TransactionStmt": "transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT)",
    "VariableSetStmt": "SET/RESET", "CopyStmt": "COPY", "DoStmt": "DO", "CallStmt": "CALL",
    "ListenStmt": "LISTEN", "UnlistenStmt": "UNLISTEN", "NotifyStmt": "NOTIFY", "PrepareStmt": "PREPARE",
    "ExecuteStmt": "EXECUTE", "DeallocateStmt": "DEALLOCATE", "LockStmt": "LOCK", "ExplainStmt": "EXPLAIN",
    "VacuumStmt": "VACUUM/ANALYZE", "ClusterStmt": "CLUSTER", "ReindexStmt": "REINDEX",
    "CheckPointStmt": "CHECKPOINT", "DiscardStmt": "DISCARD", "LoadStmt": "LOAD",
    "DeclareCursorStmt": "DECLARE CURSOR", "FetchStmt": "FETCH", "ClosePortalStmt": "CLOSE",
    "CreateRoleStmt": "CREATE ROLE", "AlterRoleStmt": "ALTER ROLE", "DropRoleStmt": "DROP ROLE",
    "GrantStmt": "GRANT/REVOKE", "GrantRoleStmt": "GRANT/REVOKE role", "TruncateStmt": "TRUNCATE",
    "RefreshMatViewStmt": "REFRESH MATERIALIZED VIEW", "CreateTableAsStmt": "CREATE TABLE AS",
    "VariableShowStmt": "SHOW", "SelectStmt": "SELECT",
    "CreateStmt": "CREATE TABLE", "DropStmt": "DROP", "AlterTableStmt": "ALTER TABLE", "IndexStmt": "CREATE INDEX",
    "ViewStmt": "CREATE VIEW", "CreateFunctionStmt": "CREATE FUNCTION", "CreateSchemaStmt": "CREATE SCHEMA",
    "RenameStmt": "ALTER ... RENAME", "CommentStmt": "COMMENT", "CreateExtensionStmt": "CREATE EXTENSION",
    "AlterSystemStmt": "ALTER SYSTEM", "CreatedbStmt": "CREATE DATABASE", "DropdbStmt": "DROP DATABASE",
    "CreateTrigStmt": "CREATE TRIGGER", "RuleStmt": "CREATE RULE", "CreateSeqStmt": "CREATE SEQUENCE",
    "AlterOwnerStmt": "ALTER ... OWNER", "CreatePolicyStmt": "CREATE POLICY",
    "AlterDefaultPrivilegesStmt": "ALTER DEFAULT PRIVILEGES", "AlterDatabaseSetStmt": "ALTER DATABASE ... SET",
    "AlterRoleSetStmt": "ALTER ROLE ... SET", "SecLabelStmt": "SECURITY LABEL",
}


def statement_label(node_type: str) -> str:
    """A name people know for a statement node: ``CreateStmt`` → ``CREATE TABLE``,
    else the node's words (``AlterTSConfigurationStmt`` → ``ALTER TS CONFIGURATION``)."""
    label = _STATEMENT_LABELS.get(node_type)
    if label is not None:
        return label
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z][a-z]*", node_type.removesuffix("Stmt"))
    return " ".join(words).upper() or node_type


def denied_function_reason(name: str) -> str | None:
    """Why the function ``name`` (no schema, as stored) is refused, or None."""
    reason = DENIED_FUNCTIONS.get(name)
    if reason is not None:
        return reason
    for prefix, why in DENIED_FUNCTION_PREFIXES:
        if name.startswith(prefix):
            return why
    if name.endswith("_reset"):  # pg_stat_statements_reset, pg_qualstats_reset, ...: extensions' counters
        return "resets statistics"
    return None
