"""The cost ceiling (MAX_QUERY_COST, MAX_ESTIMATED_ROWS) against the live server and the sample database:
ruinous statements refused before they run, cheap ones passing, and plans PostgreSQL cannot cost at all
(estimates that overflow to Infinity or NaN) refused too, never a 500."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pgmcp_http.tools.ceiling import over_ceiling
from pgmcp_http.tools.spec import CostCeiling
from tests.helpers import modern_rpc, request, serving, start_server, worker_pids
from tests.test_tools_core import failure, ok

MARKER = "pgmcp_ceiling_marker"
CROSS_JOIN = (f"SELECT /* {MARKER} */ count(*) FROM users a, orders b, order_items c, generate_series(1, 100000) g "
              "WHERE a.id > $1")


def nested(levels: int, marker: str = MARKER, *, wide: bool = False) -> str:
    """``levels`` nested correlated subqueries over huge series: planned in milliseconds, but from 16 levels
    the planner's cost overflows to Infinity, and from 17 the top node's cost is NaN (PostgreSQL 15).
    ``wide`` returns every row of a cross join of six more series instead of their max: the row estimate
    is then PostgreSQL's ceiling, 1e100, printed as a 101-digit integer."""
    inner = f"t{levels}.x"
    for level in range(levels, 0, -1):
        inner = (f"(SELECT max({inner}) FROM (SELECT generate_series(1, 9000000000000000000) AS x) AS t{level} "
                 f"WHERE t{level}.x > t{level - 1}.x)")
    if wide:
        series = ", ".join(f"generate_series(1, 1000000000000000000) g{i}" for i in range(6))
        return (f"SELECT /* {marker} */ {inner} AS v "
                f"FROM (SELECT generate_series(1, 9000000000000000000) AS x) AS t0, {series}")
    return (f"SELECT /* {marker} */ max(v) FROM (SELECT {inner} AS v "
            f"FROM (SELECT generate_series(1, 9000000000000000000) AS x) AS t0) z")


@pytest.fixture(scope="module")
def ceiling_server(pg, tmp_path_factory):
    server = start_server(pg.readonly_url, tmp_path_factory.mktemp("ceiling"), workers=1, threads=2,
                          env={"MAX_QUERY_COST": "50000", "MAX_ESTIMATED_ROWS": "100000"})
    yield server
    server.stop()


@contextlib.contextmanager
def statements_seen(pg: Any, marker: str) -> Iterator[list[str]]:
    """Every statement holding ``marker`` that PostgreSQL shows running while the block runs."""
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
            while not stop.is_set():
                seen.extend(row[0] for row in conn.execute(
                    "SELECT query FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
                    (f"%{marker}%",)))
                time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join()


def test_a_ruinous_query_is_refused_before_it_runs(pg, ceiling_server):
    with statements_seen(pg, MARKER) as seen:
        started = time.monotonic()
        text = failure(ceiling_server, "query", {"sql": CROSS_JOIN, "params": [0]})
        assert time.monotonic() - started < 2
    assert text.startswith("refused before running: its estimated cost is ")
    assert "above MAX_QUERY_COST=50000" in text and "The costliest step is" in text
    assert "add a selective WHERE clause or a LIMIT" in text.lower() or "Add a selective WHERE" in text
    assert not any("DECLARE pgmcp_rows" in query for query in seen)  # only ever planned, never run


def test_cheap_queries_pass_and_the_row_ceiling_holds(ceiling_server):
    assert ok(ceiling_server, "query", {"sql": "SELECT name FROM users WHERE id = $1", "params": [3]})["row_count"] == 1
    rows = failure(ceiling_server, "query", {"sql": "SELECT g FROM generate_series(1, 1000000) g"})
    assert "estimated to return 1000000 rows, above MAX_ESTIMATED_ROWS=100000" in rows


def test_no_argument_lifts_the_ceiling(ceiling_server):
    status, _, body = request("POST", f"{ceiling_server.base}/mcp/tools/call",
                              {"name": "query", "arguments": {"sql": CROSS_JOIN, "params": [0], "max_cost": 1e12}},
                              {"Content-Type": "application/json"})
    assert status == 200 and body["isError"] is True and "max_cost" in body["content"][0]["text"]


# -- estimates PostgreSQL cannot put a number on -------------------------------------------


@pytest.mark.parametrize(("levels", "word", "wide"), [(16, "Infinity", False), (17, "NaN", False),
                                                     (16, "Infinity", True)])
def test_a_cost_of_infinity_or_nan_is_refused_over_mcp_and_nothing_runs(pg, ceiling_server, levels, word, wide):
    marker = f"pgmcp_overflow_{levels}_{int(wide)}"
    pids = worker_pids(ceiling_server)
    with statements_seen(pg, marker) as seen:
        reply = modern_rpc(ceiling_server.url, "tools/call",
                           {"name": "query", "arguments": {"sql": nested(levels, marker, wide=wide)}})
    assert reply.status == 200 and "result" in reply.body, reply.body  # not -32603, internal error
    result = reply.body["result"]
    assert result["isError"] is True, result
    text = result["content"][0]["text"]
    assert text.startswith("refused before running: the planner could not put a number on its cost "
                           f"(EXPLAIN gives {word}: the estimate overflowed), so it is above MAX_QUERY_COST=50000")
    assert "The costliest step is" in text and "(cost beyond counting," in text
    assert " inf" not in text and " nan" not in text  # no Python float spelling leaks into the message
    assert not any("DECLARE pgmcp_rows" in query for query in seen)  # planned only
    assert worker_pids(ceiling_server) == pids  # the worker stayed up
    assert ok(ceiling_server, "query", {"sql": "SELECT 1 AS one"})["rows"] == [{"one": 1}]


def test_with_only_a_row_ceiling_a_nan_cost_is_no_error_of_the_server(pg, tmp_path):
    """One estimated row, a NaN cost: the row ceiling lets it through (no cost ceiling is set), and it runs
    until QUERY_TIMEOUT stops it: an isError result, not the 500 it used to be."""
    with serving(pg.readonly_url, tmp_path, workers=1, threads=1,
                 env={"MAX_ESTIMATED_ROWS": "100000", "QUERY_TIMEOUT": "1000"}) as server:
        reply = modern_rpc(server.url, "tools/call", {"name": "query", "arguments": {"sql": nested(17)}})
        assert reply.status == 200 and "result" in reply.body, reply.body
        result = reply.body["result"]
        assert result["isError"] is True and "QUERY_TIMEOUT" in result["content"][0]["text"], result
        assert ok(server, "query", {"sql": "SELECT 2 AS two"})["rows"] == [{"two": 2}]


@pytest.mark.parametrize(("cost", "rows", "expected"), [
    (math.inf, 1.0, ["the planner could not put a number on its cost (EXPLAIN gives Infinity"]),
    (math.nan, 1.0, ["the planner could not put a number on its cost (EXPLAIN gives NaN"]),
    (10.0, math.nan, ["the planner could not put a number on the rows it returns (EXPLAIN gives NaN)"]),
    (math.nan, math.inf, ["(EXPLAIN gives NaN", "rows it returns (EXPLAIN gives Infinity)"]),
    (10.0, 5.0, []),
])
def test_non_numbers_are_above_every_ceiling(cost, rows, expected):
    over = over_ceiling(cost, rows, CostCeiling(max_cost=1e300, max_rows=1e300))
    assert len(over) == len(expected)
    for reason, part in zip(over, expected, strict=True):
        assert part in reason and "above MAX_" in reason
