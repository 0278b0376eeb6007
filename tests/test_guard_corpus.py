"""Issue 3's corpora, through a live server: hostile inputs must be refused and change nothing;
honest analytical queries must pass.

Every hostile case is sent to a running gunicorn (``query`` or ``analyze_query``
over the REST route) configured as an operator would restrict it
(ALLOWED_SCHEMAS=public,app, BLOCKED_TABLES=app.secrets, QUERY_TIMEOUT=500 ms).
Around each case the test takes, as the superuser, a fingerprint of the
database (every user table's rows with their ctid/xmin, sequences, roles,
objects and their owners and ACLs, settings, large objects, locks, slots...)
and a listing of the places the server's OS user could write a file (the
cluster's folders, its home, /tmp); both must be identical afterwards, and
the reply must be ``isError: true`` naming the reason.

A case the guard does not refuse yet stays in the corpus with the refusal it
should get: it fails until the guard catches up.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.helpers import start_server
from tests.test_tools_core import call, ok

# Names this run gives to files and objects: other sessions may run the same corpus at the same time
# against their own cluster, but /tmp is shared.
CORPUS = "pgmcp_corpus"
MARKER = f"{CORPUS}_{os.getpid()}"
TIMEOUT_MS = 500
STARTED_SETTING = "pgmcp_corpus.server_started"
"""Set on the watching connection to when the corpus server started, so only its own backends are watched."""
MAX_QUERY_LENGTH = 4000


# -- what must not change -------------------------------------------------------------------------

# Each entry: a name and a query whose rows are hashed (md5 of the rows' text, sorted).
# Columns that autovacuum or the statistics collector may change on their own
# (relpages, reltuples, relfrozenxid, datfrozenxid...) are left out.
_CATALOG: dict[str, str] = {
    "roles": """SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
                       rolbypassrls, rolconnlimit, rolpassword, rolvaliduntil FROM pg_catalog.pg_authid""",
    "role_members": "SELECT roleid, member, grantor, admin_option FROM pg_catalog.pg_auth_members",
    "role_settings": "SELECT setdatabase, setrole, setconfig FROM pg_catalog.pg_db_role_setting",
    "databases": """SELECT oid, datname, datdba, datacl, datallowconn, datconnlimit, dattablespace, datistemplate
                    FROM pg_catalog.pg_database""",
    "tablespaces": "SELECT oid, spcname, spcowner, spcacl, pg_catalog.pg_tablespace_location(oid) "
                   "FROM pg_catalog.pg_tablespace",
    "namespaces": "SELECT oid, nspname, nspowner, nspacl FROM pg_catalog.pg_namespace",
    "relations": """SELECT oid, relname, relnamespace, relowner, relkind, relfilenode, reltablespace, relacl,
                           reloptions, relpersistence, relnatts, relchecks, relhastriggers, relhasrules,
                           relrowsecurity, relforcerowsecurity, relispopulated, relreplident, relispartition
                    FROM pg_catalog.pg_class""",
    "columns": """SELECT attrelid, attnum, attname, atttypid, atttypmod, attnotnull, atthasdef, attisdropped,
                         attidentity, attgenerated, attacl FROM pg_catalog.pg_attribute""",
    "functions": """SELECT oid, proname, pronamespace, proowner, prokind, prosecdef, provolatile, proacl,
                           proconfig, pg_catalog.md5(prosrc) FROM pg_catalog.pg_proc""",
    "types": "SELECT oid, typname, typnamespace, typowner, typacl FROM pg_catalog.pg_type",
    "constraints": "SELECT oid, conname, connamespace, contype, conrelid, convalidated FROM pg_catalog.pg_constraint",
    "indexes": "SELECT indexrelid, indrelid, indisvalid, indisclustered, indisready FROM pg_catalog.pg_index",
    "defaults": "SELECT oid, adrelid, adnum FROM pg_catalog.pg_attrdef",
    "triggers": "SELECT oid, tgname, tgrelid, tgenabled, tgfoid FROM pg_catalog.pg_trigger",
    "event_triggers": "SELECT oid, evtname, evtenabled, evtowner FROM pg_catalog.pg_event_trigger",
    "rules": "SELECT oid, rulename, ev_class, ev_type, ev_enabled FROM pg_catalog.pg_rewrite",
    "policies": "SELECT oid, polname, polrelid, polcmd, polpermissive, polroles FROM pg_catalog.pg_policy",
    "extensions": "SELECT oid, extname, extowner, extversion FROM pg_catalog.pg_extension",
    "languages": "SELECT oid, lanname, lanowner, lanpltrusted, lanacl FROM pg_catalog.pg_language",
    "casts": "SELECT oid, castsource, casttarget, castfunc FROM pg_catalog.pg_cast",
    "operators": "SELECT oid, oprname, oprnamespace, oprowner, oprcode FROM pg_catalog.pg_operator",
    "collations": "SELECT oid, collname, collnamespace, collowner FROM pg_catalog.pg_collation",
    "text_search": "SELECT oid, cfgname, cfgowner FROM pg_catalog.pg_ts_config",
    "comments": "SELECT objoid, classoid, objsubid, description FROM pg_catalog.pg_description",
    "shared_comments": "SELECT objoid, classoid, description FROM pg_catalog.pg_shdescription",
    "default_acls": "SELECT oid, defaclrole, defaclnamespace, defaclobjtype, defaclacl FROM pg_catalog.pg_default_acl",
    "foreign_wrappers": "SELECT oid, fdwname, fdwowner, fdwacl FROM pg_catalog.pg_foreign_data_wrapper",
    "foreign_servers": "SELECT oid, srvname, srvowner, srvacl, srvoptions FROM pg_catalog.pg_foreign_server",
    "user_mappings": "SELECT oid, umuser, umserver, umoptions FROM pg_catalog.pg_user_mapping",
    "publications": "SELECT oid, pubname, pubowner, puballtables FROM pg_catalog.pg_publication",
    "subscriptions": "SELECT oid, subname, subowner, subenabled FROM pg_catalog.pg_subscription",
    "replication_slots": "SELECT slot_name, plugin, slot_type, database, temporary "
                         "FROM pg_catalog.pg_replication_slots",
    "prepared_transactions": "SELECT gid, owner, database FROM pg_catalog.pg_prepared_xacts",
    "large_objects": "SELECT oid, lomowner, lomacl FROM pg_catalog.pg_largeobject_metadata",
    "large_object_pages": "SELECT count(*) FROM pg_catalog.pg_largeobject",
    "settings": "SELECT name, setting, source, sourcefile FROM pg_catalog.pg_settings WHERE source <> 'default'",
    "setting_files": "SELECT sourcefile, sourceline, name, setting, applied, error FROM pg_catalog.pg_file_settings",
    "hba": "SELECT line_number, type, database, user_name, address, auth_method FROM pg_catalog.pg_hba_file_rules",
    # ANALYZE rewrites these; autovacuum/autoanalyze of the (static) user tables does not run here.
    "user_statistics": """SELECT s.starelid, s.staattnum, s.stainherit, s.stanullfrac, s.stawidth, s.stadistinct,
                                 s.stavalues1::text
                          FROM pg_catalog.pg_statistic s JOIN pg_catalog.pg_class c ON c.oid = s.starelid
                          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')""",
    # State that outlives a call on a pooled connection, or a call still running.
    "advisory_locks": "SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory'",
    # Only backends opened since the corpus server started (STARTED_SETTING): an earlier test's slow
    # statement still ending on another server's connection must not count.
    "busy_server_sessions": f"""SELECT count(*) FROM pg_catalog.pg_stat_activity
                               WHERE usename = 'mcp_readonly' AND backend_type = 'client backend'
                               AND backend_start >= pg_catalog.current_setting('{STARTED_SETTING}')::timestamptz
                               AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')""",
}

_USER_RELATIONS = """
SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relkind::text AS kind
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm', 'S')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND (c.relkind <> 'm' OR c.relispopulated)
ORDER BY 1
"""


def _hashed(query: str) -> str:
    return f"(SELECT pg_catalog.md5(coalesce(string_agg(q::text, E'\\n' ORDER BY q::text), '')) FROM ({query}) q)"


def database_fingerprint(conn: psycopg.Connection) -> dict[str, str]:
    """A hash per component: every catalog above, then every user table's rows and every sequence."""
    parts = [f"{_hashed(query)} AS {name}" for name, query in _CATALOG.items()]
    relations = conn.execute(_USER_RELATIONS).fetchall()
    for index, (name, kind) in enumerate(relations):
        if kind == "S":
            parts.append(f"(SELECT last_value::text || '/' || is_called::text FROM {name}) AS r{index}")
        else:
            parts.append(_hashed(f"SELECT t.ctid, t.xmin, t FROM {name} t") + f" AS r{index}")
    row = conn.execute("SELECT " + ",\n".join(parts)).fetchone()
    assert row is not None
    names = list(_CATALOG) + [f"{'sequence' if kind == 'S' else 'table'} {name}" for name, kind in relations]
    return dict(zip(names, row, strict=True))


def _postgres_uid() -> int:
    try:
        return pwd.getpwnam("postgres").pw_uid
    except KeyError:
        return os.getuid()


# Top-level names in the data directory that change on their own.
_DATA_DIR_CHURN = {"postmaster.pid"}
# Data-directory folders that hostile SQL could add entries to (slots, tablespaces, 2PC, snapshots).
_DATA_SUBDIRS = ("pg_replslot", "pg_tblspc", "pg_twophase", "pg_snapshots", "pg_commit_ts")


def file_listing(pg: Any) -> dict[str, tuple[Any, ...]]:
    """Names, sizes and mtimes of the files the database server's OS user could create or change.

    The cluster's folders (data directory top level and a few of its folders,
    the cluster's base folder without its log, the socket folder), the
    postgres user's home and socket folders, and /tmp (entries named after
    this run, or owned by the postgres user and not left by another run of
    this corpus: other sessions use /tmp too). Folders are recorded by name
    only, since their mtimes churn.
    """
    cluster = pg.cluster
    uid = _postgres_uid()
    entries: dict[str, tuple[Any, ...]] = {}

    def record(folder: Path, *, keep: Callable[[os.DirEntry[str]], bool] = lambda _: True) -> None:
        try:
            listing = list(os.scandir(folder))
        except FileNotFoundError:
            return
        for entry in listing:
            try:
                if not keep(entry):
                    continue
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # another process's temporary file came and went meanwhile
                continue
            if entry.is_dir(follow_symlinks=False):
                entries[entry.path] = ("dir", info.st_uid)
            else:
                entries[entry.path] = ("file", info.st_uid, info.st_size, info.st_mtime_ns)

    record(cluster.data_dir, keep=lambda e: e.name not in _DATA_DIR_CHURN)
    for name in _DATA_SUBDIRS:
        record(cluster.data_dir / name)
    record(cluster.base, keep=lambda e: Path(e.path) != cluster.log_file)
    record(cluster.socket_dir)
    record(Path(pwd.getpwuid(uid).pw_dir) if uid != os.getuid() else Path("/nonexistent"))
    record(Path("/var/run/postgresql"))
    shared_tmp = uid == os.getuid()  # then every file we create is "postgres-owned": watch the marker only
    record(Path("/tmp"), keep=lambda e: MARKER in e.name or (
        not shared_tmp and CORPUS not in e.name and e.stat(follow_symlinks=False).st_uid == uid))
    return entries


def remove_leftovers(pg: Any) -> None:
    """Delete files a case that got through may have written, so the next case starts clean."""
    for folder in (Path("/tmp"), pg.cluster.data_dir, pg.cluster.base):
        for path in folder.glob(f"{MARKER}*"):
            if path.is_file() or path.is_symlink():
                path.unlink()


@dataclass(frozen=True)
class Snapshot:
    database: dict[str, str]
    files: dict[str, tuple[Any, ...]]

    def differences(self, later: Snapshot) -> list[str]:
        found = []
        changed = sorted(key for key in self.database.keys() | later.database.keys()
                         if self.database.get(key) != later.database.get(key))
        if changed:
            found.append(f"database changed: {', '.join(changed)}")
        files = sorted(key for key in self.files.keys() | later.files.keys()
                       if self.files.get(key) != later.files.get(key))
        if files:
            found.append("files appeared or changed: " + ", ".join(
                f"{path} {self.files.get(path)} -> {later.files.get(path)}" for path in files))
        return found


# -- fixtures ---------------------------------------------------------------------------------

# Functions an operator might have installed: they write when called. The guard
# cannot see inside them; the read-only transaction must stop them, or the
# server must refuse to call them.
SETUP_SQL = f"""
CREATE FUNCTION public.{MARKER}_write_event() RETURNS int LANGUAGE sql VOLATILE SECURITY DEFINER AS
$$ INSERT INTO user_events (user_id, event_type) VALUES (1, '{MARKER}') RETURNING 1 $$;
CREATE FUNCTION public.{MARKER}_bump_sequence() RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER AS
$$ BEGIN RETURN nextval('users_id_seq'); END $$;
CREATE FUNCTION public.{MARKER}_write_file() RETURNS int LANGUAGE plpgsql VOLATILE SECURITY DEFINER AS
$$ BEGIN COPY (SELECT 'written by a read-only call') TO '/tmp/{MARKER}_secdef.txt'; RETURN 1; END $$;
"""
TEARDOWN_SQL = f"""
DROP FUNCTION IF EXISTS public.{MARKER}_write_event();
DROP FUNCTION IF EXISTS public.{MARKER}_bump_sequence();
DROP FUNCTION IF EXISTS public.{MARKER}_write_file();
"""


@pytest.fixture(scope="module")
def superuser(pg):
    with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def corpus_server(pg, superuser, tmp_path_factory):
    remove_leftovers(pg)
    superuser.execute(SETUP_SQL)
    superuser.execute(f"SELECT pg_catalog.set_config('{STARTED_SETTING}', pg_catalog.now()::text, false)")
    server = start_server(pg.readonly_url, tmp_path_factory.mktemp("corpus"), workers=1, threads=2, env={
        "QUERY_TIMEOUT": str(TIMEOUT_MS), "ALLOWED_SCHEMAS": "public,app", "BLOCKED_TABLES": "app.secrets",
        "MAX_QUERY_LENGTH": str(MAX_QUERY_LENGTH)})
    try:
        yield server
    finally:
        server.stop()
        superuser.execute(TEARDOWN_SQL)
        remove_leftovers(pg)


def snapshot(pg: Any, conn: psycopg.Connection) -> Snapshot:
    return Snapshot(database=database_fingerprint(conn), files=file_listing(pg))


# -- the hostile corpus -------------------------------------------------------------------------

@dataclass(frozen=True)
class Hostile:
    sql: str
    expect: tuple[str, ...]
    tool: str = "query"
    params: tuple[Any, ...] | None = None


def hostile(case_id: str, sql: str, *expect: str, tool: str = "query", params: tuple[Any, ...] | None = None
            ) -> Any:
    return pytest.param(Hostile(sql=sql, expect=expect, tool=tool, params=params), id=case_id)


ONE = "only one statement is allowed"
READ_ONLY = "not allowed in read-only mode"
INSIDE = "inside the query is not allowed"
INTO = "SELECT ... INTO creates a table"
LOCKING = "locking clauses"
TX = "transaction control"
SET = "SET/RESET is not allowed"
BLOCKED = "blocked by BLOCKED_TABLES"
SCHEMA = "not in ALLOWED_SCHEMAS"
TIMEOUT = f"QUERY_TIMEOUT={TIMEOUT_MS}"
OTHER = "is not allowed; only SELECT, VALUES, TABLE or SHOW statements may run"
DEFINER = "is SECURITY DEFINER"


def fn(name: str) -> str:
    return f"function {name} is not allowed"


def rel(name: str) -> str:
    return f"relation {name} is not allowed"


def stmt(label: str) -> str:
    return f"{label} is not allowed"


HOSTILE = [
    # Multi-statement escapes: the reference server's `COMMIT; DROP TABLE` and its cousins.
    hostile("commit-drop", "COMMIT; DROP TABLE users", ONE),
    hostile("rollback-delete", "ROLLBACK; DELETE FROM orders", ONE),
    hostile("end-drop", "END; DROP TABLE users", ONE),
    hostile("select-drop", "SELECT 1; DROP TABLE users", ONE),
    hostile("select-drop-no-space", "SELECT 1;DROP TABLE users;--", ONE),
    hostile("commit-unset-readonly-insert", "COMMIT; SET default_transaction_read_only = off; "
            "INSERT INTO users (name, email) VALUES ('x', 'x@x')", ONE),
    hostile("newline-separated", "SELECT 1\n;\nALTER ROLE mcp_readonly SUPERUSER", ONE),
    hostile("semicolon-in-literal-then-real", "SELECT ';' AS semi; DROP TABLE users", ONE),
    hostile("semicolon-in-comment-then-real", "SELECT 1 /* ; */ ; UPDATE users SET name = 'x'", ONE),
    hostile("after-line-comment", "SELECT 1 -- ;\n; DROP TABLE users", ONE),
    hostile("dollar-quote-then-truncate", "SELECT $$;$$; TRUNCATE orders CASCADE", ONE),
    hostile("dollar-quotes-hide-statement", "SELECT $a$ $b$ $a$; DROP TABLE users; SELECT $b$ x $b$", ONE),
    hostile("tagged-dollar-quote", "SELECT $tag$ $$ ; $tag$; DROP SCHEMA app CASCADE", ONE),
    hostile("psql-backslash-semicolon", r"SELECT 1 \; DROP TABLE users", "syntax error"),
    hostile("backslash-does-not-escape-quote", r"SELECT '\'; DROP TABLE users; --'", ONE),
    hostile("escape-string-backslash", r"SELECT E'\\'; DROP TABLE users; --'", ONE),
    hostile("escape-string-hex-quote", r"SELECT E'\x27'; DROP TABLE users; --'", ONE),
    hostile("nested-comment-closes-late", "SELECT 1 /* /* nested */ still a comment */; DROP TABLE users", ONE),
    hostile("comment-then-drop", "SELECT 1; /* nested /* */ */ DROP TABLE users", ONE),
    hostile("nul-byte-splits-statement", "SELECT 1\x00; DROP TABLE users", "NUL", ONE, "syntax error"),
    hostile("nul-byte-in-param", "SELECT $1::text AS v", "NUL", params=("a\x00b",)),
    hostile("empty-statements-around-delete", ";;; DELETE FROM users;;;", stmt("DELETE")),

    # Data-modifying statements, at the top and at every depth.
    hostile("delete", "DELETE FROM users", "DELETE is " + READ_ONLY),
    hostile("update", "UPDATE products SET price = 0", "UPDATE is " + READ_ONLY),
    hostile("insert", "INSERT INTO users (name, email) VALUES ('x', 'x@x')", "INSERT is " + READ_ONLY),
    hostile("merge", "MERGE INTO products p USING (SELECT 1 AS id) s ON p.id = s.id "
            "WHEN MATCHED THEN DELETE", "MERGE is " + READ_ONLY),
    hostile("with-then-delete", "WITH x AS (SELECT 1) DELETE FROM users", "DELETE is " + READ_ONLY),
    hostile("cte-delete", "WITH d AS (DELETE FROM users RETURNING *) SELECT count(*) FROM d", INSIDE),
    hostile("cte-insert", "WITH i AS (INSERT INTO users (name, email) VALUES ('x', 'x@x') RETURNING id) "
            "SELECT * FROM i", INSIDE),
    hostile("cte-unreferenced-update", "WITH u AS (UPDATE products SET price = 0 RETURNING id) SELECT 1", INSIDE),
    hostile("cte-in-subquery", "SELECT * FROM (WITH d AS (DELETE FROM order_items RETURNING 1) "
            "SELECT * FROM d) s", INSIDE),
    hostile("cte-nested-with", "WITH a AS (WITH b AS (DELETE FROM user_events RETURNING 1) SELECT * FROM b) "
            "SELECT * FROM a", INSIDE),
    hostile("cte-in-lateral", "SELECT u.id FROM users u, LATERAL (WITH d AS (DELETE FROM orders "
            "WHERE user_id = u.id RETURNING 1) SELECT count(*) FROM d) x", INSIDE),
    hostile("cte-in-scalar-subquery", "SELECT (WITH d AS (DELETE FROM products RETURNING 1) "
            "SELECT count(*) FROM d)", INSIDE),
    hostile("cte-in-exists", "SELECT 1 WHERE EXISTS (WITH d AS (UPDATE users SET name = '' RETURNING 1) "
            "SELECT 1 FROM d)", INSIDE),
    hostile("cte-in-union-branch", "SELECT 1 UNION ALL (WITH d AS (DELETE FROM users RETURNING 1) "
            "SELECT 1 FROM d)", INSIDE),
    hostile("cte-second-of-two", "WITH x AS (SELECT 1), d AS (DELETE FROM app.settings RETURNING *) "
            "SELECT * FROM x", INSIDE),
    hostile("cte-beside-recursive", "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r "
            "WHERE n < 3), d AS (DELETE FROM users RETURNING 1) SELECT * FROM r", INSIDE),
    hostile("cte-in-values", "VALUES ((WITH d AS (DELETE FROM users RETURNING 1) SELECT count(*) FROM d))",
            INSIDE),
    hostile("cte-in-function-argument", "SELECT abs((WITH d AS (DELETE FROM users RETURNING 1) "
            "SELECT count(*)::int FROM d))", INSIDE),
    hostile("cte-in-join-condition", "SELECT 1 FROM users u JOIN orders o ON o.user_id = u.id AND EXISTS "
            "(WITH d AS (DELETE FROM orders RETURNING 1) SELECT 1 FROM d)", INSIDE),
    hostile("cte-insert-into-blocked", "WITH d AS (INSERT INTO app.secrets VALUES ('k', 'v') RETURNING *) "
            "SELECT * FROM d", INSIDE, BLOCKED),

    # SELECT ... INTO and CREATE TABLE AS.
    hostile("select-into", "SELECT * INTO stolen FROM users", INTO),
    hostile("select-into-temp", "SELECT * INTO TEMP stolen FROM users", INTO),
    hostile("select-into-unlogged", "SELECT 1 AS x INTO UNLOGGED TABLE stolen", INTO),
    hostile("cte-select-into", "WITH s AS (SELECT * FROM users) SELECT * INTO stolen FROM s", INTO),
    hostile("select-into-union", "SELECT * INTO stolen FROM users UNION SELECT * FROM users", INTO),
    hostile("create-table-as", "CREATE TABLE stolen AS SELECT * FROM users", stmt("CREATE TABLE AS")),

    # Row locks.
    hostile("for-update", "SELECT * FROM users FOR UPDATE", LOCKING),
    hostile("for-no-key-update", "SELECT * FROM users FOR NO KEY UPDATE", LOCKING),
    hostile("for-share", "SELECT * FROM users FOR SHARE", LOCKING),
    hostile("for-key-share", "SELECT * FROM users FOR KEY SHARE", LOCKING),
    hostile("for-update-of-nowait", "SELECT * FROM orders o JOIN users u ON u.id = o.user_id "
            "FOR UPDATE OF o NOWAIT", LOCKING),
    hostile("for-update-in-subquery", "SELECT * FROM (SELECT * FROM users FOR UPDATE SKIP LOCKED) s", LOCKING),
    hostile("for-share-in-cte", "WITH l AS (SELECT id FROM products FOR SHARE) SELECT count(*) FROM l", LOCKING),
    hostile("for-update-in-exists", "SELECT 1 WHERE EXISTS (SELECT 1 FROM app.settings FOR UPDATE)", LOCKING),

    # Transaction control.
    hostile("begin", "BEGIN", TX),
    hostile("commit", "COMMIT", TX),
    hostile("rollback", "ROLLBACK", TX),
    hostile("abort", "ABORT", TX),
    hostile("start-transaction-read-write", "START TRANSACTION READ WRITE", TX),
    hostile("savepoint", "SAVEPOINT s1", TX),
    hostile("release-savepoint", "RELEASE SAVEPOINT s1", TX),
    hostile("rollback-to-savepoint", "ROLLBACK TO SAVEPOINT s1", TX),
    hostile("prepare-transaction", f"PREPARE TRANSACTION '{MARKER}'", TX),
    hostile("commit-prepared", f"COMMIT PREPARED '{MARKER}'", TX),
    hostile("set-transaction-read-write", "SET TRANSACTION READ WRITE", SET),
    hostile("session-characteristics", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", SET),

    # Settings and identity.
    hostile("set-default-read-only-off", "SET default_transaction_read_only = off", SET),
    hostile("set-transaction-read-only-off", "SET transaction_read_only TO off", SET),
    hostile("set-statement-timeout", "SET statement_timeout = 0", SET),
    hostile("set-local-search-path", "SET LOCAL search_path = app, public", SET),
    hostile("set-role", "SET ROLE postgres", SET),
    hostile("set-session-authorization", "SET SESSION AUTHORIZATION postgres", SET),
    hostile("reset-role", "RESET ROLE", SET),
    hostile("reset-all", "RESET ALL", SET),
    hostile("set-config", "SELECT set_config('default_transaction_read_only', 'off', false)", fn("set_config")),
    hostile("set-config-qualified", "SELECT pg_catalog.set_config('statement_timeout', '0', false)",
            fn("set_config")),
    hostile("set-config-in-where", "SELECT * FROM users WHERE set_config('role', 'postgres', true) IS NOT NULL",
            fn("set_config")),
    hostile("set-config-quoted", "SELECT \"set_config\"('search_path', 'app', false)", fn("set_config")),
    hostile("discard-all", "DISCARD ALL", stmt("DISCARD")),
    hostile("load-library", "LOAD 'auto_explain'", stmt("LOAD")),
    hostile("alter-role-set", "ALTER ROLE mcp_readonly SET default_transaction_read_only = off",
            stmt("ALTER ROLE ... SET")),
    hostile("alter-database-set", "ALTER DATABASE sampledb SET default_transaction_read_only = off",
            stmt("ALTER DATABASE ... SET")),
    hostile("alter-system", "ALTER SYSTEM SET default_transaction_read_only = off", stmt("ALTER SYSTEM")),

    # COPY, to and from files, programs and the client.
    hostile("copy-to-file", f"COPY users TO '/tmp/{MARKER}_copy.csv'", stmt("COPY")),
    hostile("copy-query-to-relative-file", f"COPY (SELECT * FROM users) TO '{MARKER}_relative.csv'",
            stmt("COPY")),
    hostile("copy-from-file", "COPY users FROM '/etc/passwd'", stmt("COPY")),
    hostile("copy-to-program", f"COPY users TO PROGRAM 'touch /tmp/{MARKER}_program'", stmt("COPY")),
    hostile("copy-from-program", "COPY users FROM PROGRAM 'id'", stmt("COPY")),
    hostile("copy-to-stdout", "/* export */ COPY users TO STDOUT", stmt("COPY")),
    hostile("copy-blocked-to-stdout", "COPY (SELECT * FROM app.secrets) TO STDOUT WITH CSV", stmt("COPY")),

    # Procedural code, notifications, prepared statements, cursors.
    hostile("do-block", "DO $$ BEGIN EXECUTE 'DROP TABLE users'; END $$", stmt("DO")),
    hostile("do-language", "DO LANGUAGE plpgsql $x$ BEGIN PERFORM pg_sleep(0); END $x$", stmt("DO")),
    hostile("call-procedure", "CALL some_procedure()", stmt("CALL")),
    hostile("listen", f"LISTEN {MARKER}", stmt("LISTEN")),
    hostile("notify", f"NOTIFY {MARKER}, 'hello'", stmt("NOTIFY")),
    hostile("unlisten", "UNLISTEN *", stmt("UNLISTEN")),
    hostile("pg-notify", f"SELECT pg_notify('{MARKER}', 'hello')", fn("pg_notify")),
    hostile("prepare-delete", f"PREPARE {MARKER} AS DELETE FROM users", stmt("PREPARE")),
    hostile("prepare-select", f"PREPARE {MARKER} AS SELECT 1", stmt("PREPARE")),
    hostile("execute", f"EXECUTE {MARKER}", stmt("EXECUTE")),
    hostile("deallocate", "DEALLOCATE ALL", stmt("DEALLOCATE")),
    hostile("declare-with-hold", "DECLARE c CURSOR WITH HOLD FOR SELECT * FROM users", stmt("DECLARE CURSOR")),
    hostile("fetch-server-cursor", "FETCH ALL FROM pgmcp_rows", stmt("FETCH")),
    hostile("move-cursor", "MOVE FORWARD 1 FROM pgmcp_rows", stmt("FETCH")),
    hostile("close-all", "CLOSE ALL", stmt("CLOSE")),

    # Table locks and advisory locks.
    hostile("lock-table", "LOCK TABLE users IN ACCESS EXCLUSIVE MODE", stmt("LOCK")),
    hostile("lock-short", "LOCK app.settings", stmt("LOCK")),
    hostile("advisory-lock", "SELECT pg_advisory_lock(42)", fn("pg_advisory_lock")),
    hostile("try-advisory-lock", "SELECT pg_try_advisory_lock(42)", fn("pg_try_advisory_lock")),
    hostile("advisory-xact-lock", "SELECT pg_advisory_xact_lock(42)", fn("pg_advisory_xact_lock")),
    hostile("advisory-lock-shared-qualified", "SELECT pg_catalog.pg_advisory_lock_shared(1, 2)",
            fn("pg_advisory_lock_shared")),

    # DDL, roles, privileges.
    hostile("create-table", f"CREATE TABLE {MARKER} (id int)", stmt("CREATE TABLE")),
    hostile("create-temp-table", f"CREATE TEMP TABLE {MARKER} (id int)", stmt("CREATE TABLE")),
    hostile("create-view", f"CREATE VIEW {MARKER} AS SELECT 1", stmt("CREATE VIEW")),
    hostile("create-index", "CREATE INDEX ON users (name)", stmt("CREATE INDEX")),
    hostile("create-function", f"CREATE FUNCTION {MARKER}() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            stmt("CREATE FUNCTION")),
    hostile("create-schema", f"CREATE SCHEMA {MARKER}", stmt("CREATE SCHEMA")),
    hostile("create-sequence", f"CREATE SEQUENCE {MARKER}_seq", stmt("CREATE SEQUENCE")),
    hostile("create-type", f"CREATE TYPE {MARKER} AS (a int)", OTHER),
    hostile("alter-table-add-column", "ALTER TABLE users ADD COLUMN pwned int", stmt("ALTER TABLE")),
    hostile("alter-table-rename", "ALTER TABLE users RENAME TO users_old", stmt("ALTER ... RENAME")),
    hostile("alter-owner", "ALTER TABLE users OWNER TO mcp_readonly", stmt("ALTER TABLE")),
    hostile("drop-table", "DROP TABLE users", stmt("DROP")),
    hostile("drop-schema-cascade", "DROP SCHEMA app CASCADE", stmt("DROP")),
    hostile("truncate", "TRUNCATE orders CASCADE", stmt("TRUNCATE")),
    hostile("comment-on", "COMMENT ON TABLE users IS 'pwned'", stmt("COMMENT")),
    hostile("security-label", "SECURITY LABEL ON TABLE users IS 'x'", stmt("SECURITY LABEL")),
    hostile("grant-blocked-to-public", "GRANT ALL ON app.secrets TO PUBLIC", stmt("GRANT/REVOKE")),
    hostile("revoke", "REVOKE SELECT ON users FROM mcp_readonly", stmt("GRANT/REVOKE")),
    hostile("grant-server-files-role", "GRANT pg_read_server_files TO mcp_readonly", stmt("GRANT/REVOKE role")),
    hostile("create-role", f"CREATE ROLE {MARKER} SUPERUSER LOGIN PASSWORD 'x'", stmt("CREATE ROLE")),
    hostile("alter-role-superuser", "ALTER ROLE mcp_readonly SUPERUSER", stmt("ALTER ROLE")),
    hostile("drop-role", "DROP ROLE mcp_readonly", stmt("DROP ROLE")),
    hostile("create-extension", "CREATE EXTENSION dblink", stmt("CREATE EXTENSION")),
    hostile("create-trigger", "CREATE TRIGGER t BEFORE UPDATE ON users FOR EACH ROW "
            "EXECUTE FUNCTION suppress_redundant_updates_trigger()", stmt("CREATE TRIGGER")),
    hostile("create-rule", "CREATE RULE r AS ON INSERT TO users DO INSTEAD NOTHING", stmt("CREATE RULE")),
    hostile("create-policy", "CREATE POLICY p ON users USING (true)", stmt("CREATE POLICY")),
    hostile("alter-default-privileges", "ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC",
            stmt("ALTER DEFAULT PRIVILEGES")),
    hostile("create-database", f"CREATE DATABASE {MARKER}", stmt("CREATE DATABASE")),
    hostile("drop-database", "DROP DATABASE sampledb", stmt("DROP DATABASE")),
    hostile("create-tablespace", f"CREATE TABLESPACE {MARKER} LOCATION '/tmp'", OTHER),
    hostile("create-publication", f"CREATE PUBLICATION {MARKER} FOR ALL TABLES", OTHER),
    hostile("obfuscated-delete", "/* leading */ DELETE /* mid */ FROM users", "DELETE is " + READ_ONLY),

    # Maintenance.
    hostile("vacuum", "VACUUM", stmt("VACUUM/ANALYZE")),
    hostile("vacuum-full", "VACUUM FULL users", stmt("VACUUM/ANALYZE")),
    hostile("analyze", "ANALYZE", stmt("VACUUM/ANALYZE")),
    hostile("analyze-blocked", "ANALYZE app.secrets", stmt("VACUUM/ANALYZE")),
    hostile("cluster", "CLUSTER users USING users_pkey", stmt("CLUSTER")),
    hostile("reindex", "REINDEX TABLE users", stmt("REINDEX")),
    hostile("checkpoint", "CHECKPOINT", stmt("CHECKPOINT")),
    hostile("refresh-materialized-view", "REFRESH MATERIALIZED VIEW customer_summary",
            stmt("REFRESH MATERIALIZED VIEW")),

    # Server files and large objects.
    hostile("read-file", "SELECT pg_read_file('/etc/passwd')", fn("pg_read_file")),
    hostile("read-file-relative", "SELECT pg_read_file('postgresql.conf', 0, 200)", fn("pg_read_file")),
    hostile("read-binary-file", "SELECT pg_read_binary_file('/etc/hostname')", fn("pg_read_binary_file")),
    hostile("ls-dir", "SELECT * FROM pg_ls_dir('.')", fn("pg_ls_dir")),
    hostile("ls-logdir", "SELECT * FROM pg_ls_logdir()", fn("pg_ls_logdir")),
    hostile("ls-waldir", "SELECT * FROM pg_ls_waldir()", fn("pg_ls_waldir")),
    hostile("ls-tmpdir", "SELECT * FROM pg_ls_tmpdir()", fn("pg_ls_tmpdir")),
    hostile("stat-file", "SELECT pg_stat_file('postgresql.conf')", fn("pg_stat_file")),
    hostile("current-logfile", "SELECT pg_current_logfile()", fn("pg_current_logfile")),
    hostile("file-write-adminpack", f"SELECT pg_catalog.pg_file_write('{MARKER}', 'x', false)",
            fn("pg_file_write")),
    hostile("lo-import", "SELECT lo_import('/etc/passwd')", fn("lo_import")),
    hostile("lo-export", f"SELECT lo_export(1, '/tmp/{MARKER}_lo')", fn("lo_export")),
    hostile("lo-from-bytea", "SELECT lo_from_bytea(0, 'x')", fn("lo_from_bytea")),
    hostile("lo-get", "SELECT lo_get(1)", fn("lo_get")),
    hostile("loread-of-lo-open", "SELECT loread(lo_open(1, 262144), 100)", "large object"),
    hostile("loread", "SELECT loread(0, 100)", fn("loread")),
    hostile("lowrite", "SELECT lowrite(0, 'x')", fn("lowrite")),
    hostile("hba-rules-function", "SELECT * FROM pg_hba_file_rules()", fn("pg_hba_file_rules")),
    hostile("file-settings-function", "SELECT * FROM pg_show_all_file_settings()",
            fn("pg_show_all_file_settings")),
    hostile("ident-mappings-function", "SELECT * FROM pg_ident_file_mappings()", fn("pg_ident_file_mappings")),

    # SQL executed from a string (a way around every check above).
    hostile("query-to-xml-blocked", "SELECT query_to_xml('SELECT * FROM app.secrets', true, false, '')",
            fn("query_to_xml")),
    hostile("query-to-xml-delete", "SELECT query_to_xml('DELETE FROM users RETURNING *', true, false, '')",
            fn("query_to_xml")),
    hostile("query-to-xmlschema", "SELECT query_to_xmlschema('SELECT 1', true, false, '')",
            fn("query_to_xmlschema")),
    hostile("table-to-xml", "SELECT table_to_xml('app.secrets', true, false, '')", fn("table_to_xml")),
    hostile("table-to-xml-and-schema", "SELECT table_to_xml_and_xmlschema('users', true, false, '')",
            fn("table_to_xml_and_xmlschema")),
    hostile("cursor-to-xml", "SELECT cursor_to_xml('pgmcp_rows', 10, true, false, '')", fn("cursor_to_xml")),
    hostile("database-to-xml", "SELECT database_to_xml(true, false, '')", fn("database_to_xml")),
    hostile("schema-to-xml", "SELECT schema_to_xml('app', true, false, '')", fn("schema_to_xml")),
    hostile("ts-stat", "SELECT * FROM ts_stat('SELECT to_tsvector(value) FROM app.secrets')", fn("ts_stat")),
    hostile("ts-rewrite-query", "SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery')",
            fn("ts_rewrite")),
    hostile("xpath-over-query-to-xml", "SELECT xpath('/row', query_to_xml('SELECT * FROM app.secrets', "
            "true, false, ''))", fn("query_to_xml")),
    hostile("dblink", "SELECT * FROM dblink('dbname=sampledb user=postgres', 'DROP TABLE users') AS t(x text)",
            fn("dblink")),
    hostile("dblink-exec", "SELECT dblink_exec('dbname=sampledb', 'DROP TABLE users')", fn("dblink_exec")),
    hostile("dblink-connect-u", "SELECT dblink_connect_u('x', 'dbname=sampledb')", fn("dblink_connect_u")),

    # Other backends, the server process, sequences, WAL and replication.
    hostile("terminate-backends", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid()", fn("pg_terminate_backend")),
    hostile("cancel-backend", "SELECT pg_cancel_backend(pg_backend_pid())", fn("pg_cancel_backend")),
    hostile("reload-conf", "SELECT pg_reload_conf()", fn("pg_reload_conf")),
    hostile("rotate-logfile", "SELECT pg_rotate_logfile()", fn("pg_rotate_logfile")),
    hostile("log-memory-contexts", "SELECT pg_log_backend_memory_contexts(pg_backend_pid())",
            fn("pg_log_backend_memory_contexts")),
    hostile("promote", "SELECT pg_promote()", fn("pg_promote")),
    hostile("nextval", "SELECT nextval('users_id_seq')", fn("nextval")),
    hostile("setval", "SELECT setval('orders_id_seq', 1)", fn("setval")),
    hostile("nextval-qualified-quoted", "SELECT pg_catalog.nextval('\"public\".\"products_id_seq\"'::regclass)",
            fn("nextval")),
    hostile("txid-current", "SELECT txid_current()", fn("txid_current")),
    hostile("switch-wal", "SELECT pg_switch_wal()", fn("pg_switch_wal")),
    hostile("restore-point", f"SELECT pg_create_restore_point('{MARKER}')", fn("pg_create_restore_point")),
    hostile("logical-slot", f"SELECT pg_create_logical_replication_slot('{MARKER}', 'test_decoding')",
            fn("pg_create_logical_replication_slot")),
    hostile("physical-slot", f"SELECT pg_create_physical_replication_slot('{MARKER}')",
            fn("pg_create_physical_replication_slot")),
    hostile("drop-slot", f"SELECT pg_drop_replication_slot('{MARKER}')", fn("pg_drop_replication_slot")),
    hostile("backup-start", f"SELECT pg_backup_start('{MARKER}')", fn("pg_backup_start")),
    hostile("emit-wal-message", "SELECT pg_logical_emit_message(true, 'pgmcp', 'x')",
            fn("pg_logical_emit_message")),
    hostile("stat-reset", "SELECT pg_stat_reset()", fn("pg_stat_reset")),

    # The blocked table, reached every way a query can name it.
    hostile("blocked-plain", "SELECT * FROM app.secrets", BLOCKED),
    hostile("blocked-in-subquery", "SELECT * FROM users WHERE name IN (SELECT value FROM app.secrets)", BLOCKED),
    hostile("blocked-in-cte", "WITH s AS (SELECT * FROM app.secrets) SELECT * FROM s", BLOCKED),
    hostile("blocked-in-join", "SELECT u.name, s.value FROM users u JOIN app.secrets s ON true", BLOCKED),
    hostile("blocked-in-lateral", "SELECT * FROM users u, LATERAL (SELECT value FROM app.secrets LIMIT 1) s",
            BLOCKED),
    hostile("blocked-in-union", "SELECT key, value FROM app.settings UNION ALL "
            "SELECT name, value FROM app.secrets", BLOCKED),
    hostile("blocked-in-intersect", "SELECT * FROM app.settings INTERSECT SELECT * FROM app.secrets", BLOCKED),
    hostile("blocked-table-statement", "TABLE app.secrets", BLOCKED),
    hostile("blocked-table-in-subquery", "SELECT * FROM (TABLE app.secrets) t", BLOCKED),
    hostile("blocked-only", "SELECT * FROM ONLY app.secrets", BLOCKED),
    hostile("blocked-in-exists", "SELECT 1 WHERE EXISTS (SELECT 1 FROM app.secrets WHERE value LIKE 'sk_%')",
            BLOCKED),
    hostile("blocked-scalar-subquery", "SELECT (SELECT value FROM app.secrets LIMIT 1) AS leak", BLOCKED),
    hostile("blocked-in-recursive-cte", "WITH RECURSIVE r AS (SELECT name FROM app.secrets UNION "
            "SELECT name FROM r) SELECT * FROM r", BLOCKED),
    hostile("blocked-whole-row", "SELECT row_to_json(s) FROM app.secrets s", BLOCKED),
    hostile("blocked-quoted", 'SELECT * FROM "app"."secrets"', BLOCKED),
    hostile("blocked-upper-case", "SELECT * FROM APP.SECRETS", BLOCKED),
    hostile("blocked-catalog-qualified", "SELECT * FROM sampledb.app.secrets", BLOCKED),
    hostile("blocked-comment-between-parts", "SELECT * FROM app./**/secrets", BLOCKED),
    hostile("blocked-unicode-escapes", r'SELECT * FROM U&"app".U&"secr\0065ts"', BLOCKED),
    hostile("blocked-unqualified", "SELECT * FROM secrets", "may resolve to app.secrets"),
    hostile("blocked-unqualified-quoted", 'SELECT * FROM "secrets"', "may resolve to app.secrets"),
    hostile("blocked-via-analyze-query", "SELECT * FROM app.secrets", BLOCKED, tool="analyze_query"),

    # Catalogs that hold data values or credentials.
    hostile("pg-authid", "SELECT * FROM pg_authid", rel("pg_authid")),
    hostile("pg-authid-qualified", "SELECT rolname, rolpassword FROM pg_catalog.pg_authid", rel("pg_authid")),
    hostile("pg-authid-quoted", 'SELECT * FROM pg_catalog."pg_authid"', rel("pg_authid")),
    hostile("pg-authid-scalar-subquery", "SELECT (SELECT rolpassword FROM pg_authid LIMIT 1)", rel("pg_authid")),
    hostile("pg-shadow", "SELECT * FROM pg_shadow", rel("pg_shadow")),
    hostile("pg-shadow-upper", "SELECT * FROM PG_CATALOG.PG_SHADOW", rel("pg_shadow")),
    hostile("pg-statistic", "SELECT * FROM pg_statistic", rel("pg_statistic")),
    hostile("pg-stats", "SELECT * FROM pg_stats WHERE tablename = 'secrets'", rel("pg_stats")),
    hostile("pg-stats-ext", "SELECT * FROM pg_stats_ext", rel("pg_stats_ext")),
    hostile("pg-statistic-ext-data", "SELECT * FROM pg_statistic_ext_data", rel("pg_statistic_ext_data")),
    hostile("pg-user-mappings", "SELECT * FROM pg_user_mappings", rel("pg_user_mappings")),
    hostile("pg-user-mapping", "SELECT * FROM pg_user_mapping", rel("pg_user_mapping")),
    hostile("pg-largeobject", "SELECT * FROM pg_largeobject", rel("pg_largeobject")),
    hostile("pg-file-settings", "SELECT * FROM pg_file_settings", rel("pg_file_settings")),
    hostile("pg-hba-file-rules", "SELECT * FROM pg_hba_file_rules", rel("pg_hba_file_rules")),
    hostile("user-mapping-options", "SELECT * FROM information_schema.user_mapping_options",
            rel("user_mapping_options")),

    # Schemas outside ALLOWED_SCHEMAS.
    hostile("toast-schema", "SELECT * FROM pg_toast.pg_toast_2619", SCHEMA),
    hostile("other-schema", "SELECT * FROM billing.invoices", SCHEMA),
    hostile("other-schema-function", "SELECT billing.total(1)", SCHEMA),
    hostile("quoted-case-schema", 'SELECT * FROM "App"."secrets"', SCHEMA),
    hostile("quoted-case-public", 'SELECT * FROM "Public".users', SCHEMA),
    hostile("temp-schema", "SELECT * FROM pg_temp.secrets", SCHEMA),

    # Quoting, case, comments and escapes around a denied function.
    hostile("quoted-function", "SELECT pg_catalog.\"pg_read_file\"('/etc/passwd')", fn("pg_read_file")),
    hostile("upper-case-function", "SELECT PG_CATALOG.PG_READ_FILE('/etc/passwd')", fn("pg_read_file")),
    hostile("mixed-case-function", "SeLeCt Pg_Read_File('/etc/passwd')", fn("pg_read_file")),
    hostile("comments-between-tokens", "SELECT pg_catalog./**/pg_read_file/* x */('/etc/passwd')",
            fn("pg_read_file")),
    hostile("quoted-schema-and-function", "SELECT * FROM \"pg_catalog\".\"pg_ls_dir\"('/')", fn("pg_ls_dir")),
    hostile("unicode-escaped-function", r"""SELECT U&"pg\005fread\005ffile"('/etc/passwd')""", fn("pg_read_file")),
    hostile("unicode-uescape-function", "SELECT U&\"!0070g_ls_dir\" UESCAPE '!'('.')", fn("pg_ls_dir")),
    hostile("rows-from", "SELECT * FROM ROWS FROM (generate_series(1, 3), pg_ls_dir('.'))", fn("pg_ls_dir")),
    hostile("variadic-call", "SELECT pg_read_file(VARIADIC ARRAY['/etc/passwd'])", fn("pg_read_file")),
    hostile("in-order-by", "SELECT id FROM users ORDER BY pg_read_file('/etc/passwd')", fn("pg_read_file")),

    # Resource exhaustion: cancelled by QUERY_TIMEOUT.
    hostile("sleep", "SELECT pg_sleep(5)", TIMEOUT),
    hostile("sleep-for", "SELECT pg_sleep_for('10 seconds')", TIMEOUT),
    hostile("sleep-per-row", "SELECT * FROM users WHERE pg_sleep(1) IS NOT NULL", TIMEOUT),
    hostile("cartesian", "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b",
            TIMEOUT),
    hostile("endless-recursion", "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
            "SELECT count(*) FROM r", TIMEOUT),
    hostile("over-long", "SELECT 1 AS padding" + " " * MAX_QUERY_LENGTH + "; DROP TABLE users",
            f"MAX_QUERY_LENGTH allows {MAX_QUERY_LENGTH}"),

    # Functions that write, installed by the operator (see SETUP_SQL).
    hostile("security-definer-insert", f"SELECT {MARKER}_write_event()", DEFINER, "read-only transaction"),
    hostile("volatile-nextval", f"SELECT {MARKER}_bump_sequence()", DEFINER, "read-only transaction"),
    hostile("security-definer-copy-to-file", f"SELECT {MARKER}_write_file()", DEFINER),

    # analyze_query goes through the same guard.
    hostile("analyze-delete", "DELETE FROM users", "DELETE is " + READ_ONLY, tool="analyze_query"),
    hostile("analyze-explain-analyze", "EXPLAIN ANALYZE DELETE FROM users", "EXPLAIN is not run",
            tool="analyze_query"),
    hostile("analyze-explain-options", "EXPLAIN (ANALYZE, FORMAT JSON) SELECT pg_sleep(1)", "EXPLAIN is not run",
            tool="analyze_query"),
    hostile("analyze-two-statements", "SELECT 1; DROP TABLE users", ONE, tool="analyze_query"),
    hostile("analyze-cte-delete", "WITH d AS (DELETE FROM users RETURNING 1) SELECT * FROM d", INSIDE,
            tool="analyze_query"),
    hostile("analyze-read-file", "SELECT pg_read_file('/etc/passwd')", fn("pg_read_file"), tool="analyze_query"),
    hostile("analyze-create-table-as", "CREATE TABLE stolen AS SELECT 1", stmt("CREATE TABLE AS"),
            tool="analyze_query"),
    hostile("analyze-for-update", "SELECT * FROM users FOR UPDATE", LOCKING, tool="analyze_query"),
]


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_input_is_refused_and_changes_nothing(case: Hostile, corpus_server, superuser, pg):
    before = snapshot(pg, superuser)
    arguments: dict[str, Any] = {"sql": case.sql}
    if case.params is not None:
        arguments["params"] = list(case.params)
    result = call(corpus_server, case.tool, arguments)
    after = snapshot(pg, superuser)
    remove_leftovers(pg)
    text = result["content"][0]["text"] if result.get("content") else repr(result)
    problems = []
    if result.get("isError") is not True:
        problems.append(f"not refused: {text[:300]}")
    elif not any(reason in text for reason in case.expect):
        problems.append(f"refused, but not for the expected reason ({' / '.join(case.expect)}): {text[:300]}")
    problems += before.differences(after)
    assert not problems, "\n".join(problems)


def test_the_fingerprint_and_the_listing_notice_changes(pg, superuser):
    """The checks above are only worth something if they see a change: make small ones (and undo them)."""
    probes = [
        ("table app.settings", "UPDATE app.settings SET value = value WHERE key = 'currency'", None),
        ("sequence public.users_id_seq", "SELECT setval('users_id_seq', 51)", "SELECT setval('users_id_seq', 50)"),
        ("roles", "ALTER ROLE mcp_readonly CONNECTION LIMIT 99", "ALTER ROLE mcp_readonly CONNECTION LIMIT -1"),
        ("comments", "COMMENT ON TABLE app.settings IS 'probe'", "COMMENT ON TABLE app.settings IS NULL"),
        ("advisory_locks", "SELECT pg_advisory_lock(7)", "SELECT pg_advisory_unlock(7)"),
        ("functions", f"CREATE FUNCTION {MARKER}_probe() RETURNS int LANGUAGE sql AS 'SELECT 1'",
         f"DROP FUNCTION {MARKER}_probe()"),
    ]
    assert superuser.execute("SELECT last_value, is_called FROM users_id_seq").fetchone() == (50, True)
    for component, change, undo in probes:
        before = database_fingerprint(superuser)
        superuser.execute(change)
        try:
            after = database_fingerprint(superuser)
        finally:
            if undo:
                superuser.execute(undo)
        assert [key for key in before if before[key] != after[key]] == [component], change
    for folder in (Path("/tmp"), pg.cluster.data_dir):
        before_files = file_listing(pg)
        probe = folder / f"{MARKER}_probe"
        probe.write_text("x")
        try:
            assert str(probe) in Snapshot({}, before_files).differences(Snapshot({}, file_listing(pg)))[0]
        finally:
            probe.unlink()
    assert file_listing(pg) == before_files


def test_the_corpus_is_large_and_varied():
    assert len(HOSTILE) >= 80 and len(HONEST) >= 40
    assert sum(1 for case in HOSTILE if case.values[0].tool == "analyze_query") >= 5
    assert len({case.id for case in HOSTILE}) == len(HOSTILE)
    assert len({case.id for case in HONEST}) == len(HONEST)


# -- the honest corpus --------------------------------------------------------------------------

def honest(case_id: str, sql: str, check: Callable[[dict[str, Any]], bool], params: list[Any] | None = None,
           tool: str = "query") -> Any:
    return pytest.param(sql, params, check, tool, id=case_id)


def rows(*expected: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    return lambda data: data["rows"] == list(expected)


def count(n: int) -> Callable[[dict[str, Any]], bool]:
    return lambda data: data["row_count"] == n


def scans(*relations: str) -> Callable[[dict[str, Any]], bool]:
    return lambda data: set(relations) <= {scan["relation"] for scan in data["summary"]["scans"]}


HONEST = [
    # Joins and aggregates.
    honest("join-three-tables", "SELECT (SELECT sum(i.quantity * i.unit_price) FROM orders o "
           "JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id) = "
           "(SELECT sum(total_amount) FROM orders) AS same", rows({"same": True})),
    honest("join-users-orders", "SELECT u.name, count(o.id) AS n FROM users u LEFT JOIN orders o "
           "ON o.user_id = u.id GROUP BY u.id, u.name ORDER BY u.id LIMIT 2",
           rows({"name": "User 1", "n": 4}, {"name": "User 2", "n": 4})),
    honest("group-by-status", "SELECT status, count(*) AS n FROM orders GROUP BY status ORDER BY status",
           rows(*({"status": s, "n": 50} for s in ("cancelled", "paid", "pending", "shipped")))),
    honest("having", "SELECT user_id FROM orders GROUP BY user_id HAVING count(*) = 4", count(50)),
    honest("filter-clause", "SELECT count(*) FILTER (WHERE status = 'paid') AS paid, "
           "count(*) FILTER (WHERE status = 'cancelled') AS cancelled FROM orders",
           rows({"paid": 50, "cancelled": 50})),
    honest("view", "SELECT sum(total_orders)::int AS n FROM customer_summary", rows({"n": 200})),
    honest("correlated-subquery", "SELECT u.id, (SELECT count(*) FROM orders o WHERE o.user_id = u.id) AS n "
           "FROM users u ORDER BY u.id LIMIT 3", rows(*({"id": i, "n": 4} for i in (1, 2, 3)))),
    honest("exists", "SELECT count(*) AS n FROM customers c WHERE EXISTS "
           "(SELECT 1 FROM orders o WHERE o.customer_id = c.id)", rows({"n": 20})),
    honest("not-exists", "SELECT count(*) AS n FROM products p WHERE NOT EXISTS "
           "(SELECT 1 FROM order_items i WHERE i.product_id = p.id)", rows({"n": 0})),
    honest("case-buckets", "SELECT CASE WHEN price < 20 THEN 'cheap' WHEN price < 60 THEN 'mid' ELSE 'dear' END "
           "AS band, count(*) AS n FROM products GROUP BY 1 ORDER BY 1",
           rows({"band": "cheap", "n": 6}, {"band": "dear", "n": 12}, {"band": "mid", "n": 12})),
    honest("tablesample", "SELECT count(*) AS n FROM orders TABLESAMPLE SYSTEM (100)", rows({"n": 200})),

    # Window functions.
    honest("row-number", "SELECT id, row_number() OVER (PARTITION BY status ORDER BY id) AS rn FROM orders "
           "ORDER BY id LIMIT 4", rows(*({"id": i, "rn": 1} for i in (1, 2, 3, 4)))),
    honest("running-sum", "SELECT g, sum(g) OVER (ORDER BY g ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) "
           "AS s FROM generate_series(1, 5) g", lambda d: [r["s"] for r in d["rows"]] == [1, 3, 6, 10, 15]),
    honest("lag-lead", "SELECT g, lag(g) OVER w AS prev, lead(g) OVER w AS next FROM generate_series(1, 3) g "
           "WINDOW w AS (ORDER BY g)", rows({"g": 1, "prev": None, "next": 2}, {"g": 2, "prev": 1, "next": 3},
                                            {"g": 3, "prev": 2, "next": None})),
    honest("rank", "SELECT status, rank() OVER (ORDER BY count(*) DESC) AS r FROM orders GROUP BY status",
           lambda d: d["row_count"] == 4 and {r["r"] for r in d["rows"]} == {1}),
    honest("count-over", "SELECT id, count(*) OVER () AS total FROM products ORDER BY id LIMIT 1",
           rows({"id": 1, "total": 30})),

    # CTEs, recursive CTEs, LATERAL.
    honest("cte", "WITH paid AS (SELECT * FROM orders WHERE status = 'paid') SELECT count(*) AS n FROM paid",
           rows({"n": 50})),
    honest("cte-materialized", "WITH t AS MATERIALIZED (SELECT id FROM users) SELECT max(id) AS m FROM t",
           rows({"m": 50})),
    honest("recursive-sum", "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 10) "
           "SELECT sum(n)::int AS s FROM t", rows({"s": 55})),
    honest("recursive-fibonacci", "WITH RECURSIVE fib(a, b, n) AS (SELECT 0::bigint, 1::bigint, 1 UNION ALL "
           "SELECT b, a + b, n + 1 FROM fib WHERE n < 20) SELECT a FROM fib WHERE n = 20", rows({"a": 4181})),
    honest("lateral-top-two", "SELECT u.id, x.id AS order_id FROM users u CROSS JOIN LATERAL "
           "(SELECT o.id FROM orders o WHERE o.user_id = u.id ORDER BY o.total_amount DESC, o.id LIMIT 2) x",
           count(100)),

    # GROUPING SETS, ROLLUP, CUBE.
    honest("grouping-sets", "SELECT status, count(*) AS n FROM orders GROUP BY GROUPING SETS ((status), ()) "
           "ORDER BY status NULLS LAST", lambda d: d["row_count"] == 5 and d["rows"][-1] == {"status": None,
                                                                                              "n": 200}),
    honest("rollup", "SELECT date_trunc('month', created_at)::date AS month, status, count(*) AS n FROM orders "
           "GROUP BY ROLLUP (1, 2)", count(11)),
    honest("cube", "SELECT in_stock, price > 50 AS pricey, count(*) AS n, grouping(in_stock, price > 50) AS g "
           "FROM products GROUP BY CUBE (in_stock, price > 50) ORDER BY g DESC LIMIT 1",
           rows({"in_stock": None, "pricey": None, "n": 30, "g": 3})),

    # JSON.
    honest("jsonb-field", "SELECT address->>'city' AS city, count(*) AS n FROM customers GROUP BY 1 ORDER BY 1",
           rows(*({"city": c, "n": 5} for c in ("Austin", "Lisbon", "Osaka", "Oslo")))),
    honest("jsonb-build-agg", "SELECT jsonb_build_object('n', count(*), 'cities', "
           "jsonb_agg(DISTINCT address->'city')) AS doc FROM customers",
           lambda d: d["rows"][0]["doc"]["n"] == 20 and len(d["rows"][0]["doc"]["cities"]) == 4),
    honest("jsonb-containment", "SELECT count(*) AS n FROM customers WHERE address @> '{\"city\": \"Oslo\"}'",
           rows({"n": 5})),
    honest("jsonb-path", "SELECT jsonb_path_query_array('{\"a\": [1, 2, 3, 4]}', '$.a[*] ? (@ > 2)') AS big",
           rows({"big": [3, 4]})),
    honest("jsonb-each", "SELECT key, value FROM customers, jsonb_each_text(address) WHERE id = 1 ORDER BY key",
           rows({"key": "city", "value": "Oslo"}, {"key": "zip", "value": "00001"})),
    honest("json-path-operator", "SELECT '{\"a\": {\"b\": [10, 20]}}'::json #>> '{a,b,1}' AS v", rows({"v": "20"})),

    # Series, dates, text.
    honest("generate-series-dates", "SELECT count(*) AS days FROM generate_series(date '2025-01-01', "
           "date '2025-03-01', interval '1 day')", rows({"days": 60})),
    honest("series-left-join", "SELECT d::date AS day, count(o.id) AS n FROM generate_series(timestamp "
           "'2025-01-01', timestamp '2025-01-07', interval '1 day') d LEFT JOIN orders o "
           "ON o.created_at::date = d::date GROUP BY 1 ORDER BY 1",
           lambda d: d["row_count"] == 7 and d["rows"][0] == {"day": "2025-01-01", "n": 3}),
    honest("date-trunc-month", "SELECT date_trunc('month', created_at) AS month, count(*) AS n FROM orders "
           "GROUP BY 1 ORDER BY 1", lambda d: [r["n"] for r in d["rows"]] == [106, 94]),
    honest("interval-span", "SELECT max(created_at) - min(created_at) AS span FROM orders",
           rows({"span": "P58DT1H"})),
    honest("to-char", "SELECT to_char(date '2025-03-04', 'YYYY/MM/DD') AS d, to_char(1234.5, 'FM9,999.00') AS n",
           rows({"d": "2025/03/04", "n": "1,234.50"})),
    honest("now", "SELECT now() > timestamptz '2020-01-01' AS recent, now() = transaction_timestamp() AS same",
           rows({"recent": True, "same": True})),
    honest("distinct-on", "SELECT DISTINCT ON (user_id) user_id, id FROM orders ORDER BY user_id, created_at DESC",
           lambda d: d["row_count"] == 50 and d["rows"][0] == {"user_id": 1, "id": 200}),
    honest("percentile-cont", "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY price) AS median FROM products",
           rows({"median": 50.375})),
    honest("string-agg", "SELECT string_agg(key, ',' ORDER BY key) AS keys FROM app.settings",
           rows({"keys": "currency,timezone"})),
    honest("format", "SELECT format('%s has %s orders', 'User 1', 4) AS s", rows({"s": "User 1 has 4 orders"})),
    honest("regexp", "SELECT count(*) AS n, regexp_replace('a1b22c333', '[0-9]+', '#', 'g') AS r, "
           "(regexp_match('sku: SKU-0042', 'SKU-(\\d+)'))[1] AS m FROM users WHERE email ~ '^user[0-9]@'",
           rows({"n": 9, "r": "a#b#c#", "m": "0042"})),
    honest("xpath-on-literal", "SELECT (xpath('/a/b/text()', '<a><b>x</b></a>'::xml))[1]::text AS v",
           rows({"v": "x"})),

    # Arrays.
    honest("unnest-ordinality", "SELECT x, n FROM unnest(ARRAY['a', 'b', 'c']) WITH ORDINALITY AS t(x, n)",
           rows({"x": "a", "n": 1}, {"x": "b", "n": 2}, {"x": "c", "n": 3})),
    honest("any-array", "SELECT count(*) AS n FROM users WHERE id = ANY (ARRAY[1, 2, 3, 99])", rows({"n": 3})),
    honest("array-agg-slice", "SELECT array_length(array_agg(id), 1) AS n, (array_agg(id ORDER BY id))[1:3] "
           "AS first FROM products WHERE NOT in_stock", rows({"n": 4, "first": [7, 14, 21]})),

    # Set operations, VALUES, TABLE, SHOW.
    honest("union-except", "SELECT id FROM users WHERE id <= 5 UNION SELECT user_id FROM orders WHERE user_id <= 3 "
           "EXCEPT SELECT 2 ORDER BY 1", rows(*({"id": i} for i in (1, 3, 4, 5)))),
    honest("intersect", "SELECT customer_id FROM orders INTERSECT SELECT id FROM customers", count(20)),
    honest("values", "VALUES (1, 'one'), (2, 'two')", rows({"column1": 1, "column2": "one"},
                                                          {"column1": 2, "column2": "two"})),
    honest("values-in-from", "SELECT k FROM (VALUES ('a', 1), ('b', 2)) AS v(k, n) ORDER BY n DESC LIMIT 1",
           rows({"k": "b"})),
    honest("table-settings", "TABLE app.settings", count(2)),
    honest("show-timeout", "SHOW statement_timeout", rows({"statement_timeout": f"{TIMEOUT_MS}ms"})),
    honest("show-read-only", "SHOW transaction_read_only", rows({"transaction_read_only": "on"})),

    # Catalogs for troubleshooting.
    honest("pg-stat-activity", "SELECT pid, state, usename FROM pg_stat_activity WHERE pid = pg_backend_pid()",
           lambda d: d["rows"][0]["state"] == "active" and d["rows"][0]["usename"] == "mcp_readonly"),
    honest("pg-stat-activity-summary", "SELECT state, count(*) AS n FROM pg_stat_activity "
           "WHERE datname = current_database() GROUP BY state", lambda d: d["row_count"] >= 1),
    honest("pg-locks", "SELECT count(*) AS n FROM pg_locks WHERE pid = pg_backend_pid()",
           lambda d: d["rows"][0]["n"] >= 1),
    honest("pg-class", "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
           "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1",
           lambda d: {"customers", "order_items", "orders", "products", "user_events", "users"}
           <= {r["relname"] for r in d["rows"]}),
    honest("information-schema-columns", "SELECT column_name FROM information_schema.columns "
           "WHERE table_schema = 'public' AND table_name = 'orders' ORDER BY ordinal_position",
           lambda d: [r["column_name"] for r in d["rows"]] == ["id", "user_id", "customer_id", "status",
                                                                "total_amount", "created_at"]),
    honest("pg-roles", "SELECT rolname, rolsuper FROM pg_roles WHERE rolname = current_user",
           rows({"rolname": "mcp_readonly", "rolsuper": False})),
    honest("relation-size", "SELECT pg_total_relation_size('orders') > 0 AS has_size", rows({"has_size": True})),

    # The sample's functions, and parameters.
    honest("customer-analytics", "SELECT customer_name, total_orders FROM get_customer_analytics(1)",
           rows({"customer_name": "Company 1", "total_orders": 10})),
    honest("daily-sales-summary", "SELECT sum(orders)::int AS n FROM daily_sales_summary()", rows({"n": 150})),
    honest("params", "SELECT count(*) AS n FROM orders WHERE status = $1 AND total_amount > $2",
           rows({"n": 50}), params=["paid", 0]),
    honest("like-with-param", "SELECT count(*) AS n FROM customers WHERE company_name LIKE 'Company 1%' "
           "AND id <= $1", rows({"n": 7}), params=[15]),
    honest("jsonb-param", "SELECT count(*) AS n FROM customers WHERE address @> $1::jsonb", rows({"n": 5}),
           params=[{"city": "Lisbon"}]),
    honest("param-lookup", "SELECT name FROM public.users WHERE id = $1", rows({"name": "User 7"}), params=[7]),

    # Harmless text that looks dangerous.
    honest("dangerous-words-in-literals", "SELECT 'COMMIT; DROP TABLE users' AS text, "
           "$$ DELETE FROM users; $$ AS body", rows({"text": "COMMIT; DROP TABLE users",
                                                    "body": " DELETE FROM users; "})),
    honest("nested-comment-hides-drop", "SELECT 1 /* /* */ ; DROP TABLE users; */ AS one", rows({"one": 1})),
    honest("trailing-semicolon-and-comment", "SELECT count(*) AS n FROM users; -- DROP TABLE users",
           rows({"n": 50})),
    honest("quoted-identifiers", 'SELECT "name" FROM "users" WHERE "id" = 1', rows({"name": "User 1"})),

    # analyze_query explains honest statements.
    honest("analyze-join", "SELECT u.name, count(o.id) FROM users u JOIN orders o ON o.user_id = u.id "
           "GROUP BY u.name", scans("public.users", "public.orders"), tool="analyze_query"),
    honest("analyze-param", "SELECT * FROM orders WHERE user_id = $1", scans("public.orders"), params=[3],
           tool="analyze_query"),
]


@pytest.mark.parametrize("sql, params, check, tool", HONEST)
def test_honest_query_passes(sql, params, check, tool, corpus_server):
    arguments: dict[str, Any] = {"sql": sql}
    if params is not None:
        arguments["params"] = params
    data = ok(corpus_server, tool, arguments)
    assert check(data), data

