"""The official TypeScript SDK client (what most MCP hosts embed) against a live gunicorn.

tests/node/client_check.mjs does the talking and prints a JSON report; the SDK itself
validates every result's shape and each tool's structuredContent against its outputSchema.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import start_server
from tests.nodejs import node_tools

BUILT_IN_TOOLS = ["query", "describe_table", "list_tables", "analyze_query", "database_health"]
TOKEN = "ts-client-token-" + "7e3f9a1c5b2d4e6f"
SESSION_CALLS = 20


@pytest.fixture(scope="module")
def report(pg, tmp_path_factory) -> dict[str, Any]:
    tools = node_tools()
    server = start_server(pg.readonly_url, tmp_path_factory.mktemp("ts-client"), workers=3, threads=4)
    try:
        found = tools.run_json(tools.client_check, server.url, "--calls", str(SESSION_CALLS))
        found["log"] = server.log_lines()
    finally:
        server.stop()
    assert "error" not in found, found["error"]
    return found


def test_connects_in_the_newest_handshake_revision(report):
    assert report["protocolVersion"] == "2025-11-25"
    assert report["serverInfo"]["name"] == "postgres-mcp-server"
    assert {"tools", "resources"} <= set(report["capabilities"])
    assert report["ping"] == {}


def test_every_built_in_tool_is_listed_with_a_validated_output_schema(report):
    assert [tool["name"] for tool in report["tools"]] == BUILT_IN_TOOLS
    for tool in report["tools"]:
        assert tool["hasOutputSchema"] and tool["validator"], tool
        assert tool["readOnlyHint"] is True, tool


def test_every_built_in_tool_answers_with_structured_content(report):
    calls = report["calls"]
    assert sorted(calls) == sorted(BUILT_IN_TOOLS)
    for name, call in calls.items():
        assert call["isError"] is False, (name, call)
        assert call["contentTypes"] == ["text"], name
        assert call["textMatchesStructured"], name
    assert calls["query"]["structuredContent"]["rows"] == [{"id": 3, "name": "User 3", "email": "user3@example.com"}]
    described = calls["describe_table"]["structuredContent"]
    assert described["name"] == "orders" and described["primary_key"] == ["id"]
    listed = {(table["schema"], table["name"]) for table in calls["list_tables"]["structuredContent"]["tables"]}
    assert {("public", "users"), ("public", "orders")} <= listed
    assert calls["analyze_query"]["structuredContent"]["summary"]["total_cost"] > 0
    assert set(calls["database_health"]["structuredContent"]["sections"]) == {"connections", "cache"}


def test_one_session_of_twenty_calls_is_served_by_several_workers(report):
    session = report["session"]
    assert session["sessionId"] and session["sameSessionAfter"]
    assert session["answers"] == [2 * i for i in range(SESSION_CALLS)]
    served = [line for line in report["log"] if line.get("tool") == "query" and line.get("status") == 200]
    assert len(served) == SESSION_CALLS + 1  # the session's calls and the one of the tool round
    assert {line["mcp_version"] for line in served} == {"2025-11-25"}
    assert len({line["worker_pid"] for line in served}) >= 2


def test_resources_and_templates_list_and_read(report):
    resources = report["resources"]
    assert {"postgres://table/public/users", "postgres://schema/public"} <= set(resources["uris"])
    assert resources["templates"] == ["postgres://schema/{schema}", "postgres://table/{schema}/{table}",
                                      "postgres://function/{schema}/{name}"]
    users = resources["reads"]["postgres://table/public/users"]
    assert users["mimeType"] == "application/json"
    assert users["document"]["name"] == "users"
    assert [column["name"] for column in users["document"]["columns"]] == ["id", "name", "email", "created_at"]
    function_uri = next(uri for uri in resources["reads"] if uri.startswith("postgres://function/"))
    assert resources["reads"][function_uri]["uri"] == function_uri
    assert resources["unknown"]["code"] == -32002


def test_prompts_and_completions(report):
    assert "explain_slow_query" in [prompt["name"] for prompt in report["prompts"]]
    assert report["prompt"]["roles"] == ["user"]
    assert "analyze_query" in report["prompt"]["text"]
    assert "SELECT * FROM orders WHERE user_id = 7" in report["prompt"]["text"]
    assert report["completion"]["values"] == ["order_items", "orders"]  # prefix "ORD", case-insensitive


def test_bearer_token_from_request_init_headers(pg, tmp_path_factory):
    tools = node_tools()
    server = start_server(pg.readonly_url, tmp_path_factory.mktemp("ts-auth"), workers=2, threads=2,
                          env={"AUTH_TOKENS": TOKEN})
    try:
        found = tools.run_json(tools.client_check, server.url, "--token", TOKEN)
    finally:
        server.stop()
    assert "error" not in found, found["error"]
    for refused in (found["none"], found["wrong"]):
        assert refused["connected"] is False
        assert refused["error"]["code"] == 401, refused
    assert TOKEN not in str(found["wrong"])
    assert found["right"]["sessionId"]
    assert found["right"]["tools"] == BUILT_IN_TOOLS
    assert found["right"]["rows"] == [{"n": 200}] and found["right"]["isError"] is False
