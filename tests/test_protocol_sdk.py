"""The official MCP Python SDK client against a live gunicorn (2 workers), in every revision."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from tests.helpers import MODERN, sdk_client

HANDSHAKE_REVISIONS = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]
ALL_REVISIONS = [*HANDSHAKE_REVISIONS, MODERN]
STRUCTURED_SINCE = {"2025-06-18", "2025-11-25", MODERN}


def _payload(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    assert len(result.content) == 1 and result.content[0].type == "text"
    return json.loads(result.content[0].text)


@pytest.mark.parametrize("revision", ALL_REVISIONS)
def test_list_and_call_every_tool_and_read_a_resource(server, revision):
    async def scenario() -> None:
        async with sdk_client(server.url, revision) as client:
            listed = await client.list_tools()
            tools = {tool.name: tool for tool in listed.tools}
            assert list(tools) == ["query", "describe_table", "list_tables", "analyze_query", "database_health"]
            assert tools["describe_table"].input_schema["required"] == ["table_name"]
            if revision in STRUCTURED_SINCE:
                assert tools["query"].output_schema["required"] == ["columns", "rows", "row_count", "truncated"]
            else:
                assert tools["query"].output_schema is None  # not defined before 2025-06-18
            if revision != "2024-11-05":
                assert tools["query"].annotations.read_only_hint is True

            result = await client.call_tool(
                "query", {"sql": "SELECT count(*) AS n FROM users WHERE email LIKE $1", "params": ["user1%"]})
            payload = _payload(result)
            assert payload["rows"] == [{"n": 11}]  # user1 and user10..user19
            assert payload["columns"] == [{"name": "n", "type": "bigint"}]
            if revision in STRUCTURED_SINCE:
                assert result.structured_content == payload
            else:
                assert result.structured_content is None

            described = _payload(await client.call_tool("describe_table", {"table_name": "users"}))
            assert [col["name"] for col in described["columns"]] == ["id", "name", "email", "created_at"]
            assert described["primary_key"] == ["id"]

            listing = _payload(await client.call_tool("list_tables", {"schema_name": "public"}))
            names = {(t["schema"], t["name"], t["kind"]) for t in listing["tables"]}
            assert ("public", "users", "table") in names
            assert ("public", "customer_summary", "view") in names

            plan = _payload(await client.call_tool(
                "analyze_query", {"sql": "SELECT * FROM orders WHERE user_id = $1", "params": [7]}))
            assert plan["summary"]["total_cost"] > 0
            assert plan["plan"][0]["Plan"]["Node Type"]

            resources = await client.list_resources()
            uris = [resource.uri for resource in resources.resources]
            assert "postgres://table/public/users" in uris
            assert "postgres://schema/public" in uris
            read = await client.read_resource("postgres://table/public/users")
            document = json.loads(read.contents[0].text)
            assert document["name"] == "users" and read.contents[0].mime_type == "application/json"
            templates = await client.list_resource_templates()
            assert {t.uri_template for t in templates.resource_templates} == {
                "postgres://schema/{schema}", "postgres://table/{schema}/{table}",
                "postgres://function/{schema}/{name}"}

    anyio.run(scenario)


@pytest.mark.parametrize("revision", ALL_REVISIONS)
def test_a_refused_statement_is_a_tool_error_not_a_protocol_error(server, revision):
    async def scenario() -> None:
        async with sdk_client(server.url, revision) as client:
            result = await client.call_tool("query", {"sql": "COMMIT; DROP TABLE users"})
            assert result.is_error
            assert "only one statement is allowed; found 2" in result.content[0].text

    anyio.run(scenario)


def _worker_pids(server: Any, revision: str) -> set[int]:
    return {line["worker_pid"] for line in server.log_lines()
            if line.get("tool") == "query" and line.get("mcp_version") == revision and line.get("status") == 200}


@pytest.mark.parametrize("revision", HANDSHAKE_REVISIONS)
def test_one_session_is_served_by_every_worker(server, revision):
    """20+ calls on one session over fresh connections: several workers serve the same signed session."""
    async def scenario() -> int:
        calls = 0
        async with sdk_client(server.url, revision, keepalive=False) as client:
            while calls < 20 or (len(_worker_pids(server, revision)) < 2 and calls < 200):
                result = await client.call_tool("query", {"sql": "SELECT $1::int * 2 AS doubled",
                                                          "params": [calls]})
                assert _payload(result)["rows"] == [{"doubled": calls * 2}]
                calls += 1
        return calls

    calls = anyio.run(scenario)
    assert calls >= 20
    assert len(_worker_pids(server, revision)) >= 2
