"""analyze_query on a database large enough for plans to matter: the digest, the advice, and hypopg.

The server runs with one worker and one connection, so a hypothetical index
left behind by one call would show in the next call's plan.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from tests.helpers import scratch_database, serving
from tests.test_tools_ceiling import nested
from tests.test_tools_core import failure, ok

DB = "pgmcp_plans"

FIXTURE_SQL = """
CREATE EXTENSION hypopg;
CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO accounts SELECT g, 'account ' || g FROM generate_series(1, 1000) g;
CREATE TABLE events (
    id bigint PRIMARY KEY, account_id int NOT NULL, kind text NOT NULL, email varchar(100) NOT NULL,
    created_at timestamptz NOT NULL, payload text NOT NULL);
INSERT INTO events
    SELECT g, g % 1000 + 1, (ARRAY['open', 'click', 'buy', 'leave'])[g % 4 + 1], 'user' || g || '@example.org',
           timestamptz '2025-01-01' + g * interval '1 minute', md5(g::text)
    FROM generate_series(1, 200000) g;
CREATE INDEX events_email_idx ON events (email);
CREATE TABLE wide AS SELECT g AS c1, g AS c2, g AS c3, g AS c4, g AS c5, g AS c6, g AS c7, g AS c8, g AS c9,
    g AS c10, g AS c11, g AS c12, g AS c13, g AS c14, g AS c15, g AS c16, g AS c17, g AS c18, g AS c19, g AS c20,
    g AS c21, g AS c22 FROM generate_series(1, 100) g;
CREATE TABLE fresh (id int, note text);
ANALYZE accounts, events, wide;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO mcp_readonly;
"""


@pytest.fixture(scope="module")
def planner(pg, tmp_path_factory):
    with scratch_database(pg, DB, FIXTURE_SQL) as url, serving(
            url, tmp_path_factory.mktemp("plans"), workers=1, threads=1,
            env={"MAX_CONNECTIONS": "1", "WEB_CONCURRENCY": "1"}) as server:
        yield server


def analyze(server: Any, sql: str, params: list[Any] | None = None) -> dict[str, Any]:
    arguments: dict[str, Any] = {"sql": sql}
    if params is not None:
        arguments["params"] = params
    return ok(server, "analyze_query", arguments)


def of_kind(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in data["suggestions"] if s["kind"] == kind]


def test_a_selective_sequential_scan_gets_a_verified_index(planner):
    data = analyze(planner, "SELECT id, created_at FROM events WHERE account_id = 42 AND kind = 'buy'")
    (scan,) = data["summary"]["scans"]
    assert scan["relation"] == "public.events" and scan["node"] == "Seq Scan" and scan["table_rows"] == 200000
    assert "account_id = 42" in scan["filter"]
    (advice,) = of_kind(data, "index")
    assert advice["statement"] == "CREATE INDEX ON public.events (account_id, kind)"
    assert advice["verified"] is True and advice["planner_uses_it"] is True
    assert advice["cost_after"] < advice["cost_before"] / 10
    assert advice["cost_before"] == data["summary"]["total_cost"]


def test_the_hypothetical_index_is_gone_afterwards(planner):
    """One connection serves every call: the next plan must be the sequential scan again."""
    for _ in range(2):
        data = analyze(planner, "SELECT id FROM events WHERE account_id = 7")
        assert [s["node"] for s in data["summary"]["scans"]] == ["Seq Scan"]
        assert of_kind(data, "index")[0]["planner_uses_it"] is True


def test_without_hypopg_the_advice_says_it_is_unverified(pg, planner):
    with psycopg.connect(pg.superuser_url(DB), autocommit=True) as conn:
        conn.execute("DROP EXTENSION hypopg")
        try:
            (advice,) = of_kind(analyze(planner, "SELECT id FROM events WHERE account_id = 7"), "index")
        finally:
            conn.execute("CREATE EXTENSION hypopg")
    assert advice["verified"] is False and "install the hypopg extension" in advice["note"]
    assert advice["statement"] == "CREATE INDEX ON public.events (account_id)"


def test_a_function_around_an_indexed_column_gets_an_expression_index(planner):
    data = analyze(planner, "SELECT id FROM events WHERE lower(email) = 'user5@example.org'")
    (advice,) = of_kind(data, "index")
    assert advice["statement"] == "CREATE INDEX ON public.events (lower(email))"
    assert "applies lower() to email (a plain index on the column cannot serve it)" in advice["reason"]
    assert advice["planner_uses_it"] is True and advice["cost_after"] < advice["cost_before"]


def test_a_cast_on_an_indexed_column_is_named(planner):
    cast = analyze(planner, "SELECT id FROM events WHERE id::text = '5'")
    (advice,) = of_kind(cast, "implicit_cast")
    assert advice["relation"] == "public.events" and advice["column"] == "id"
    assert "compare with a value of the column's own type" in advice["reason"]


def test_join_keys_order_and_strategies(planner):
    data = analyze(planner, "SELECT a.name, count(*) FROM accounts a JOIN events e ON e.account_id = a.id "
                            "WHERE a.name = 'account 5' GROUP BY a.name")
    (join,) = data["summary"]["joins"]
    assert join["strategy"] in ("Hash Join", "Nested Loop", "Merge Join")
    assert {*join["outer"], *join["inner"]} == {"public.accounts a", "public.events e"}
    keys = [s for s in of_kind(data, "index") if s["relation"] == "public.events"]
    assert keys and keys[0]["statement"] == "CREATE INDEX ON public.events (account_id)"
    assert keys[0]["verified"] is True


def test_never_analyzed_wide_select_star_and_spills(pg, planner):
    fresh = analyze(planner, "SELECT * FROM fresh WHERE id = 1")
    assert [s["relation"] for s in of_kind(fresh, "analyze")] == ["public.fresh"]
    wide = analyze(planner, "SELECT * FROM wide")
    assert "SELECT * reads all 22 columns of public.wide" in of_kind(wide, "select_star")[0]["reason"]
    assert of_kind(analyze(planner, "SELECT c1, c2 FROM wide"), "select_star") == []
    sort = analyze(planner, "SELECT * FROM events ORDER BY payload")
    (spill,) = sort["summary"]["may_spill"]
    assert spill["node"] == "Sort" and spill["estimated_bytes"] > spill["memory_limit_bytes"] == 4 * 1024 * 1024
    assert "may spill to disk (work_mem allows 4194304 bytes)" in of_kind(sort, "memory")[0]["reason"]


def test_parameters_give_a_custom_plan_and_none_the_generic_one(planner):
    custom = analyze(planner, "SELECT id FROM events WHERE account_id = $1 AND email LIKE $2", [3, "user3%"])
    assert custom["plan_kind"] == "custom"
    for _ in range(2):  # the prepared statement behind a generic plan is gone after each call
        generic = analyze(planner, "SELECT id FROM events WHERE account_id = $1 AND email LIKE $2")
        assert generic["plan_kind"] == "generic"
        assert "$1" in generic["summary"]["scans"][0]["filter"]
    assert analyze(planner, "SELECT $1 AS anything")["plan_kind"] == "generic"
    assert "uses $1..$1 (1 parameters) but 2 params" in failure(planner, "analyze_query",
                                                                {"sql": "SELECT $1", "params": [1, 2]})
    assert analyze(planner, "SELECT 1 AS one")["plan_kind"] == "custom"


def test_analyze_never_runs_the_statement(planner):
    started = time.monotonic()
    data = analyze(planner, "SELECT pg_sleep(30), count(*) FROM events")
    assert time.monotonic() - started < 10  # pg_sleep(30) was planned, never run
    # One Aggregate, or a Finalize and a Partial one when the planner goes parallel (it may, once
    # autovacuum has been through the table).
    assert data["summary"]["node_types"]["Aggregate"] in (1, 2)


def test_an_overflowed_plan_with_the_largest_row_estimate_is_shown(planner):
    """Infinity for the cost and 1e100 rows, which PostgreSQL prints as a 101-digit integer."""
    summary = analyze(planner, nested(16, wide=True))["summary"]
    assert summary["total_cost"] == "Infinity" and summary["estimated_rows"] == 1e100
    assert summary["estimate_overflowed"] is True


@pytest.mark.parametrize(("levels", "word"), [(16, "Infinity"), (17, "NaN")])
def test_a_plan_whose_estimate_overflows_is_shown_with_a_note(planner, levels, word):
    """PostgreSQL prints such costs as bare Infinity / NaN (not JSON): the plan is shown, the costs as those
    words, and the digest says the estimate overflowed, where it used to be an internal error."""
    data = analyze(planner, nested(levels))
    summary = data["summary"]
    assert summary["total_cost"] == word and summary["estimate_overflowed"] is True
    assert "the planner's estimate overflowed" in summary["note"]
    assert data["plan"][0]["Plan"]["Total Cost"] == word
    assert summary["estimated_rows"] == 1 and summary["node_types"]["Aggregate"] >= levels
    plain = analyze(planner, "SELECT id FROM accounts WHERE id = 1")["summary"]
    assert "estimate_overflowed" not in plain and isinstance(plain["total_cost"], float)
