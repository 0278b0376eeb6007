"""The SQL guard alone (no server): verdicts from PostgreSQL's parser."""

from __future__ import annotations

import pytest

from pgmcp_http.sqlguard import Guard, GuardPolicy, Refusal, check

POLICY = GuardPolicy(allowed_schemas=("public", "app"), blocked_tables=("app.secrets", "tokens"))


@pytest.mark.parametrize("sql,reason", [
    ("COMMIT; DROP TABLE users", "only one statement is allowed; found 2"),
    ("SELECT 1; SELECT 2", "only one statement is allowed; found 2"),
    ("", "the SQL is empty"),
    ("DELETE FROM users", "DELETE is not allowed in read-only mode"),
    ("WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d", "(DELETE) inside the query"),
    ("SELECT * FROM (WITH x AS (UPDATE users SET name = '' RETURNING 1) SELECT * FROM x) s", "(UPDATE)"),
    ("SELECT 1 INTO t", "SELECT ... INTO creates a table"),
    ("SELECT * FROM users FOR UPDATE", "locking clauses"),
    ("SET ROLE postgres", "SET/RESET is not allowed"),
    ("BEGIN", "transaction control"),
    ("COPY users TO PROGRAM 'id'", "COPY is not allowed"),
    ("DO $$ BEGIN END $$", "DO is not allowed"),
    ("CREATE TABLE t (id int)", "CREATE TABLE is not allowed"),
    ("ALTER TEXT SEARCH CONFIGURATION english ADD MAPPING FOR word WITH simple", "ALTER TS CONFIGURATION"),
    ("SELECT pg_read_file('/etc/passwd')", "function pg_read_file is not allowed"),
    ("SELECT * FROM pg_catalog.pg_read_file('/etc/passwd')", "function pg_read_file is not allowed"),
    ("SELECT query_to_xml('select * from app.secrets', true, true, '')", "executes SQL given as a string"),
    ("SELECT set_config('role', 'postgres', false)", "function set_config is not allowed"),
    ("SELECT pg_advisory_lock(1)", "advisory locks"),
    ("SELECT lo_import('/etc/passwd')", "large objects"),
    ("SELECT nextval('users_id_seq')", "changes sequences"),
    ("SELECT * FROM pg_stats", "relation pg_stats is not allowed"),
    ("SELECT * FROM pg_catalog.pg_authid", "relation pg_authid is not allowed"),
    ("SELECT * FROM app.secrets", "table app.secrets is blocked by BLOCKED_TABLES"),
    ("SELECT * FROM secrets", "may resolve to app.secrets"),
    ("SELECT * FROM users WHERE id IN (SELECT 1 FROM tokens)", "table tokens is blocked"),
    ("SELECT * FROM billing.invoices", "schema billing, which is not in ALLOWED_SCHEMAS"),
    ("SELECT billing.total(1)", "function billing.total is in schema billing"),
    ("SELECT * FROM secrets, (WITH secrets AS (SELECT 1) SELECT * FROM secrets) s", "blocked by BLOCKED_TABLES"),
    ("EXPLAIN ANALYZE DELETE FROM users", "use the analyze_query tool"),
    ("SELECT 'unterminated", "syntax error"),
])
def test_refusals(sql, reason):
    with pytest.raises(Refusal) as caught:
        check(sql, POLICY)
    assert reason in caught.value.reason


@pytest.mark.parametrize("sql", [
    "SELECT 1--1;DROP TABLE x",           # one statement: the rest is a comment
    'SELECT "update", "delete" FROM users',
    "SELECT 'DROP TABLE users; COMMIT' AS text",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT * FROM t",
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total_amount) FROM orders",
    "SELECT u.id, row_number() OVER (PARTITION BY u.id) FROM users u, LATERAL (SELECT 1) x",
    "SELECT * FROM get_customer_analytics(1)",
    "SELECT * FROM pg_stat_activity",
    "TABLE app.settings",
    "VALUES (1), (2)",
    "SHOW work_mem",
    "SELECT * FROM public.secrets",         # qualified, and only app.secrets is blocked
])
def test_honest_reads_pass(sql):
    assert check(sql, POLICY).kind in ("select", "show")


def test_placeholders_are_rewritten_only_outside_literals_and_comments():
    approved = check("SELECT '$1 %', $$ $2 $$, $2 /* $3 */ FROM t WHERE a LIKE 'x%' AND b = $1 -- $4", GuardPolicy())
    assert approved.param_count == 2
    assert approved.text == ("SELECT '$1 %%', $$ $2 $$, %(p2)s /* $3 */ FROM t WHERE a LIKE 'x%%' "
                             "AND b = %(p1)s -- $4\n")


def test_statement_text_ends_with_a_newline_so_appended_sql_is_not_commented_out():
    assert check("SELECT 1 -- trailing", GuardPolicy()).text.endswith("-- trailing\n")
    assert check("SELECT 1;", GuardPolicy()).text == "SELECT 1\n"


def test_max_length_is_checked_before_parsing():
    with pytest.raises(Refusal, match="MAX_QUERY_LENGTH allows 10"):
        check("SELECT 1234567890", GuardPolicy(max_length=10))


def test_guard_memo_returns_the_same_verdicts():
    guard = Guard(POLICY, size=2)
    assert guard.check("SELECT 1").kind == "select"
    for _ in range(2):
        with pytest.raises(Refusal, match="DELETE"):
            guard.check("DELETE FROM users")
    guard.check("SELECT 2")
    guard.check("SELECT 3")  # evicts the oldest
    assert guard.check("SELECT 1").kind == "select"


@pytest.mark.parametrize("sql,reason", [
    ("SELECT loread(lo_open(1, 262144), 100)", "large objects"),
    ("SELECT ts_rewrite('a'::tsquery, 'SELECT keyword, sample FROM app.secrets')", "executes SQL given as a string"),
    ("SELECT * FROM crosstab('SELECT * FROM app.secrets')", "executes SQL given as a string"),
    ("SELECT * FROM heap_page_items(get_raw_page('users', 0))", "reads raw table pages"),
    ("SELECT pg_stat_statements_reset()", "resets statistics"),
    ("SELECT some_extension_reset()", "resets statistics"),
    ('SELECT "pg_catalog"."PG_READ_FILE"(\'x\')', None),  # a different (nonexistent) function: quoted keeps case
    ("SELECT PG_CATALOG.PG_READ_FILE('x')", "function pg_read_file is not allowed"),
    ("SELECT pg_catalog . /* hi */ pg_read_file('x')", "function pg_read_file is not allowed"),
    ('SELECT * FROM "APP"."SECRETS"', "schema APP, which is not in ALLOWED_SCHEMAS"),
    ("SELECT * FROM APP.SECRETS", "table app.secrets is blocked"),
    ("SELECT * FROM sampledb.app.secrets", "table app.secrets is blocked"),
    ("SELECT * FROM ONLY app.secrets", "table app.secrets is blocked"),
    ("SELECT * FROM users u JOIN LATERAL (SELECT * FROM app.secrets) s ON true", "blocked"),
    ("SELECT 1 UNION SELECT 1 FROM app.secrets", "blocked"),
])
def test_refusals_whatever_the_spelling(sql, reason):
    if reason is None:
        assert check(sql, POLICY).kind == "select"
        return
    with pytest.raises(Refusal) as caught:
        check(sql, POLICY)
    assert reason in caught.value.reason


def test_unqualified_names_resolve_through_the_search_path():
    """With ALLOWED_SCHEMAS set, the search path is exactly those schemas: an unqualified name cannot
    reach a blocked table elsewhere. Without it, the path is unknown and every same-named entry counts."""
    policy = GuardPolicy(allowed_schemas=("public",), blocked_tables=("app.secrets",))
    assert check("SELECT * FROM secrets", policy).relations == frozenset({(None, "secrets")})
    with pytest.raises(Refusal, match="may resolve to app.secrets"):
        check("SELECT * FROM secrets", GuardPolicy(blocked_tables=("app.secrets",)))
    with pytest.raises(Refusal, match="may resolve to app.secrets"):
        check("SELECT * FROM secrets", GuardPolicy(allowed_schemas=("public", "app"), blocked_tables=("app.secrets",)))


def test_write_mode_allows_dml_and_writable_ctes_but_nothing_else():
    writes = GuardPolicy(read_only=False)
    assert check("INSERT INTO t VALUES (1) RETURNING *", writes).kind == "write"
    cte = check("WITH d AS (DELETE FROM t RETURNING *) SELECT count(*) FROM d", writes)
    assert cte.kind == "write" and not cte.server_cursor  # DECLARE CURSOR refuses data-modifying CTEs
    assert check("SELECT 1", writes).server_cursor
    for sql in ("DROP TABLE t", "SET ROLE x", "COPY t FROM '/tmp/x'", "DO $$ BEGIN END $$", "TRUNCATE t",
                "SELECT set_config('a.b', 'c', false)", "GRANT SELECT ON t TO PUBLIC", "SELECT * FROM t FOR UPDATE"):
        with pytest.raises(Refusal):
            check(sql, writes)


def test_over_long_sql_is_refused_before_parsing():
    with pytest.raises(Refusal, match="MAX_QUERY_LENGTH allows 50"):
        check("SELECT " + "1 + " * 20 + "1", GuardPolicy(max_length=50))


def test_nul_characters_are_refused_before_parsing():
    with pytest.raises(Refusal, match="NUL character"):
        check("SELECT 1\x00; DROP TABLE users", POLICY)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM pg_hba_file_rules()", "SELECT * FROM pg_show_all_file_settings()",
    "SELECT * FROM information_schema.user_mapping_options", "SELECT * FROM user_mappings",
])
def test_configuration_files_and_credentials_stay_out_of_reach(sql):
    with pytest.raises(Refusal, match="is not allowed"):
        check(sql, POLICY)


def test_called_functions_are_reported_for_the_definer_check():
    approved = check("SELECT lower(name), app.f(1), count(*) FROM users", POLICY)
    assert approved.functions == frozenset({(None, "lower"), ("app", "f"), (None, "count")})


def test_security_definer_functions_are_refused_unless_allowed():
    definers = frozenset({("public", "get_secret"), ("app", "audited")})
    policy = GuardPolicy(allowed_schemas=("public",), allowed_definer_functions=("app.audited",))
    assert "public.get_secret is SECURITY DEFINER" in policy.definer_refusal(
        frozenset({(None, "get_secret")}), definers)
    assert policy.definer_refusal(frozenset({("app", "audited")}), definers) is None
    # Unqualified, app.audited is out of the search path (ALLOWED_SCHEMAS): not the one called.
    assert policy.definer_refusal(frozenset({(None, "audited"), (None, "lower")}), definers) is None
    by_name = GuardPolicy(allowed_definer_functions=("get_secret",))
    assert by_name.definer_refusal(frozenset({(None, "get_secret")}), definers) is None


@pytest.mark.parametrize(("sql", "reason"), [
    ("SELECT (pid).pg_terminate_backend FROM pg_stat_activity", "function pg_terminate_backend is not allowed"),
    ("SELECT (pid).pg_cancel_backend FROM pg_stat_activity", "function pg_cancel_backend is not allowed"),
    ("SELECT (4242::bigint).pg_advisory_lock", "function pg_advisory_lock is not allowed"),
    ("SELECT ((q).ts_stat).word FROM (SELECT 'SELECT 1'::text AS q) x", "function ts_stat is not allowed"),
    ("SELECT ('/etc/passwd'::text).pg_read_file", "function pg_read_file is not allowed"),
    ("SELECT s.pg_read_file FROM (SELECT '/etc/hostname'::text) s", "function pg_read_file is not allowed"),
    ("SELECT setseed(0.5)", "function setseed is not allowed"),
    ("SELECT 1 OPERATOR(billing.+) 1", "operator billing.+ is in schema billing"),
    ("SELECT 'x'::billing.money_t", "type billing.money_t is in schema billing"),
])
def test_attribute_notation_operators_and_types_are_checked_too(sql, reason):
    with pytest.raises(Refusal) as caught:
        check(sql, POLICY)
    assert reason in caught.value.reason


def test_attribute_notation_and_operators_reach_the_definer_check():
    approved = check("SELECT o.note, (o).total FROM orders o WHERE 1 === 1", POLICY)
    assert {(None, "note"), (None, "total")} <= approved.functions and approved.operators == {"==="}
