"""DISABLE_TOOLS: a deployment offers only some of the built-in tools."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pgmcp_http.config import ConfigError, load_settings
from pgmcp_http.runtime import CURATED_INSTRUCTIONS
from pgmcp_http.tools import server_tools
from tests.helpers import ServerProcess, modern_rpc, request, start_server, start_up_failure

URL = "postgresql://reader:pw@db.example:5432/app"


@pytest.fixture(scope="module")
def trimmed(pg, tmp_path_factory) -> Iterator[ServerProcess]:
    server = start_server(pg.readonly_url, tmp_path_factory.mktemp("trimmed"), workers=1, threads=2,
                          env={"DISABLE_TOOLS": "query, analyze_query"})
    yield server
    server.stop()


def test_disable_tools_names_built_in_tools():
    settings = load_settings({"DATABASE_URL": URL, "DISABLE_TOOLS": " query, analyze_query ,query"})
    assert settings.disabled_tools == ("query", "analyze_query")
    names = [spec.name for spec in server_tools(read_only=True, disabled=settings.disabled_tools)]
    assert names == ["describe_table", "list_tables", "database_health"]
    with pytest.raises(ConfigError, match="DISABLE_TOOLS: 'qurey' is not a built-in tool; built-in tools are "
                                          "query, describe_table"):
        server_tools(read_only=True, disabled=("qurey",))
    with pytest.raises(ConfigError, match="DISABLE_TOOLS: 'drop table' is not a tool name"):
        load_settings({"DATABASE_URL": URL, "DISABLE_TOOLS": "drop table"})


def test_disabled_tools_are_neither_listed_nor_callable(trimmed):
    status, _, listing = request("GET", f"{trimmed.base}/mcp/tools/list")
    assert status == 200
    assert [tool["name"] for tool in listing["tools"]] == ["describe_table", "list_tables", "database_health"]
    for name, arguments in (("query", {"sql": "SELECT 1"}), ("analyze_query", {"sql": "SELECT 1"})):
        reply = modern_rpc(trimmed.url, "tools/call", {"name": name, "arguments": arguments})
        assert reply.body["error"]["code"] == -32602
        assert f"unknown tool '{name}'" in reply.body["error"]["message"]
    assert modern_rpc(trimmed.url, "tools/call", {"name": "describe_table", "arguments": {
        "table_name": "users"}}).body["result"]["isError"] is False
    assert modern_rpc(trimmed.url, "server/discover").body["result"]["instructions"] == CURATED_INSTRUCTIONS


def test_a_bad_disable_tools_entry_stops_gunicorn(pg, tmp_path):
    lines = start_up_failure(pg.readonly_url, tmp_path, {"DISABLE_TOOLS": "qurey"})
    assert lines == ["pgmcp-http: configuration error: DISABLE_TOOLS: 'qurey' is not a built-in tool; built-in "
                     "tools are query, describe_table, list_tables, analyze_query, database_health (to drop a "
                     "custom tool, remove it from TOOLS_FILE)"]
