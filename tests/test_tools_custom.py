"""Custom tools from TOOLS_FILE on live gunicorn servers: the guide's examples through the SDK client,
argument validation before any SQL, per-tool limits, DISABLE_TOOLS, and start-up with and without
the database."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from devkit import devdb
from tests.helpers import ServerProcess, call_tool, request, sdk_client, start_server, start_up_failure

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "tools.yaml"
BUILTIN = ["query", "describe_table", "list_tables", "analyze_query", "database_health"]

TEST_TOOLS = """
tools:
  - name: tripwire
    description: Fails loudly whenever its SQL runs.
    parameters:
      - name: x
        type: integer
        description: any number from 0 to 10
        minimum: 0
        maximum: 10
    sql: SELECT 1 / ($1 - $1) AS boom
  - name: capped
    description: Users, at most three.
    sql: SELECT id FROM users ORDER BY id
    max_rows: 3
  - name: slow
    description: Sleeps.
    parameters:
      - {name: seconds, type: number, description: how long}
    sql: SELECT pg_sleep($1) AS slept
    timeout: 300
  - name: users_by_id
    description: Users by id.
    parameters:
      - {name: ids, type: array, items: integer, description: user ids}
    sql: SELECT id, name FROM users WHERE id = ANY($1::int[]) ORDER BY id
  - name: order_count
    description: Orders, optionally of one status.
    parameters:
      - name: status
        type: string
        description: only orders of this status
        enum: [pending, paid, shipped, cancelled]
        required: false
    sql: SELECT count(*) AS n FROM orders WHERE ($1::text IS NULL OR status = $1)
  - name: pairs
    description: Every pair of users (too costly for its own ceiling).
    sql: SELECT a.id, b.id FROM users a, users b, orders c
    max_cost: 10
"""


@pytest.fixture(scope="module")
def curated(pg, tmp_path_factory) -> Iterator[ServerProcess]:
    """The example file as shipped, with the free-form query tool switched off."""
    server = start_server(pg.readonly_url, tmp_path_factory.mktemp("curated"), workers=1, threads=2,
                          env={"TOOLS_FILE": str(EXAMPLE), "DISABLE_TOOLS": "query"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def custom(pg, tmp_path_factory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("custom")
    path = workdir / "tools.yaml"
    path.write_text(textwrap.dedent(TEST_TOOLS))
    server = start_server(pg.readonly_url, workdir, workers=1, threads=2, env={"TOOLS_FILE": str(path)})
    yield server
    server.stop()


def expected_rows(pg: Any, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The same figures asked of PostgreSQL directly, as the superuser, outside the server."""
    with psycopg.connect(pg.superuser_url()) as conn:
        return conn.execute(sql, params).fetchall()


def payload(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    data = json.loads(result.content[0].text)
    assert result.structured_content == data
    return data


def test_the_guides_examples_answer_through_the_sdk_client(pg, curated):
    async def scenario() -> None:
        async with sdk_client(curated.url, "2025-11-25") as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert list(tools) == ["describe_table", "list_tables", "analyze_query", "database_health",
                                   "customer_analytics", "revenue_report"]
            analytics = tools["customer_analytics"]
            assert analytics.input_schema["properties"]["customer_id"]["type"] == "integer"
            assert analytics.input_schema["required"] == ["customer_id"]
            assert list(analytics.output_schema["properties"]["rows"]["items"]["properties"]) == [
                "customer_name", "total_orders", "total_spent", "avg_order_value", "last_order_date"]
            assert analytics.annotations.read_only_hint is True
            assert "Returns: One row for the customer" in analytics.description

            one = payload(await client.call_tool("customer_analytics", {"customer_id": 3}))
            ((name, orders, spent, average, last),) = expected_rows(
                pg, "SELECT c.company_name, count(o.id), sum(o.total_amount), round(avg(o.total_amount), 2), "
                    "max(o.created_at) FROM customers c JOIN orders o ON o.customer_id = c.id "
                    "AND o.status <> 'cancelled' WHERE c.id = %s GROUP BY c.company_name", (3,))
            assert one["rows"] == [{"customer_name": name, "total_orders": orders, "total_spent": str(spent),
                                    "avg_order_value": str(average), "last_order_date": last.isoformat()}]
            assert one["rows"][0]["customer_name"] == "Company 3" and one["row_count"] == 1
            assert payload(await client.call_tool("customer_analytics", {"customer_id": 999}))["rows"] == []

            monthly = payload(await client.call_tool("revenue_report", {
                "start_date": "2025-01-01", "end_date": "2025-02-28", "granularity": "month"}))
            months = expected_rows(
                pg, "SELECT date_trunc('month', created_at)::date, count(*), sum(total_amount) FROM orders "
                    "WHERE status <> 'cancelled' GROUP BY 1 ORDER BY 1", ())
            assert [(row["period"], row["orders"], row["revenue"]) for row in monthly["rows"]] == [
                (day.isoformat(), count, str(total)) for day, count, total in months]
            assert [row["period"] for row in monthly["rows"]] == ["2025-01-01", "2025-02-01"]

            daily = payload(await client.call_tool("revenue_report", {"start_date": "2025-01-02",
                                                                      "end_date": "2025-01-03"}))
            days = expected_rows(
                pg, "SELECT created_at::date, count(*) FROM orders WHERE status <> 'cancelled' "
                    "AND created_at >= '2025-01-02' AND created_at < '2025-01-04' GROUP BY 1 ORDER BY 1", ())
            assert [(row["period"], row["orders"]) for row in daily["rows"]] == [
                (day.isoformat(), count) for day, count in days]

    anyio.run(scenario)


@pytest.mark.parametrize("arguments,fragment", [
    ({"customer_id": "3"}, "invalid argument `customer_id`: '3' is not of type 'integer'"),
    ({"customer_id": 0}, "invalid argument `customer_id`: 0 is less than the minimum of 1"),
    ({}, "invalid arguments: 'customer_id' is a required property"),
    ({"customer_id": 3, "date_range": "2025"}, "Additional properties are not allowed ('date_range' was unexpected)"),
])
def test_arguments_that_break_the_schema_are_a_tool_error_naming_them(curated, arguments, fragment):
    async def scenario() -> None:
        async with sdk_client(curated.url, "2025-11-25") as client:
            result = await client.call_tool("customer_analytics", arguments)
            assert result.is_error
            assert fragment in result.content[0].text

    anyio.run(scenario)


def test_pattern_and_enum_are_checked(curated):
    bad_date = call_tool(curated, "revenue_report", {"start_date": "2025-1-1", "end_date": "2025-01-31"})
    assert bad_date["isError"] and "invalid argument `start_date`: '2025-1-1' does not match" in \
        bad_date["content"][0]["text"]
    bad_period = call_tool(curated, "revenue_report", {"start_date": "2025-01-01", "end_date": "2025-01-31",
                                                       "granularity": "year"})
    assert "invalid argument `granularity`: 'year' is not one of ['day', 'week', 'month']" in \
        bad_period["content"][0]["text"]


def test_the_schema_is_checked_before_any_sql_runs(custom):
    """tripwire divides by zero whenever it runs: a bad argument must come back as such, not as that error."""
    for bad in ({"x": "1"}, {"x": 11}, {"x": 1.5}, {}):
        result = call_tool(custom, "tripwire", bad)
        assert result["isError"] and result["content"][0]["text"].startswith("invalid argument"), result
        assert "division by zero" not in result["content"][0]["text"]
    ran = call_tool(custom, "tripwire", {"x": 1})
    assert ran["isError"] and "PostgreSQL error: division by zero" in ran["content"][0]["text"]


def test_custom_tools_follow_the_built_in_ones(custom):
    status, _, listing = request("GET", f"{custom.base}/mcp/tools/list")
    assert status == 200
    assert [tool["name"] for tool in listing["tools"]] == [*BUILTIN, "tripwire", "capped", "slow", "users_by_id",
                                                           "order_count", "pairs"]


def test_max_rows_and_timeout_of_the_tool_apply_and_name_themselves(custom):
    capped = call_tool(custom, "capped", {})["structuredContent"]
    assert capped["rows"] == [{"id": 1}, {"id": 2}, {"id": 3}] and capped["truncated"] is True
    assert capped["truncated_reason"] == "capped.max_rows=3"
    assert "narrow the arguments" in capped["note"]
    slow = call_tool(custom, "slow", {"seconds": 2})
    assert slow["isError"]
    assert "cancelled after 0.3 s (slow.timeout=300)" in slow["content"][0]["text"]
    assert call_tool(custom, "slow", {"seconds": 0})["isError"] is False


def test_arrays_bind_as_postgresql_arrays_and_optional_parameters_as_null(custom):
    users = call_tool(custom, "users_by_id", {"ids": [3, 1, 3.0]})["structuredContent"]
    assert users["rows"] == [{"id": 1, "name": "User 1"}, {"id": 3, "name": "User 3"}]
    assert call_tool(custom, "users_by_id", {"ids": []})["structuredContent"]["rows"] == []
    assert call_tool(custom, "order_count", {})["structuredContent"]["rows"] == [{"n": 200}]
    assert call_tool(custom, "order_count", {"status": "paid"})["structuredContent"]["rows"] == [{"n": 50}]


def test_the_server_starts_without_its_database_and_says_what_it_did_not_check(tmp_path):
    dead = f"postgresql://mcp_readonly:unused-secret-pw@127.0.0.1:{devdb.free_port()}/sampledb"
    server = start_server(dead, tmp_path, workers=1, threads=2, env={"TOOLS_FILE": str(EXAMPLE)})
    try:
        status, _, listing = request("GET", f"{server.base}/mcp/tools/list")
        assert status == 200
        tools = {tool["name"]: tool for tool in listing["tools"]}
        assert tools["revenue_report"]["outputSchema"]["required"] == ["columns", "rows", "row_count", "truncated"]
        result = call_tool(server, "customer_analytics", {"customer_id": 1})
        assert result["isError"] and "database unavailable" in result["content"][0]["text"]
        warnings = [line["message"] for line in server.log_lines() if line.get("level") == "WARNING"]
        assert any("not planned against the database (cannot connect" in line for line in warnings), warnings
    finally:
        server.stop()


def test_a_broken_tool_stops_gunicorn_with_one_line(pg, tmp_path):
    path = tmp_path / "tools.yaml"
    path.write_text("tools:\n  - name: lost\n    description: d\n    sql: SELECT * FROM no_such_table\n")
    lines = start_up_failure(pg.readonly_url, tmp_path, {"TOOLS_FILE": str(path)})
    assert lines == [f"pgmcp-http: configuration error: TOOLS_FILE {path}, line 4, tool lost: PostgreSQL rejects the "
                     'sql: relation "no_such_table" does not exist (near: `no_such_table`) [SQLSTATE 42P01]; fix '
                     "the statement (checked with each $n bound to a NULL of its parameter's type) or grant the "
                     "role what it needs"]


def test_custom_tools_take_a_format_and_their_own_cost_ceiling(custom):
    result = call_tool(custom, "capped", {"format": "csv"})
    assert result["content"][0]["text"] == "id\r\n1\r\n2\r\n3\r\n"
    assert result["content"][1]["text"].startswith("Only the first 3 rows are shown (capped.max_rows=3)")
    assert result["structuredContent"]["rows"] == [{"id": 1}, {"id": 2}, {"id": 3}]
    refused = call_tool(custom, "pairs", {})
    assert refused["isError"] is True
    assert "refused before running" in refused["content"][0]["text"]
    assert "above pairs.max_cost=10" in refused["content"][0]["text"]
