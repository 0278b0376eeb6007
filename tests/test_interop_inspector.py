"""The MCP Inspector's CLI (@modelcontextprotocol/inspector --cli) against a live gunicorn, in both eras.

These are the commands of docs/clients.md ("MCP Inspector"): `tools/list` and a `tools/call`, as a
person would type them, with the Inspector's machine-readable output (--format json).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import start_server
from tests.nodejs import node_tools

BUILT_IN_TOOLS = ["query", "describe_table", "list_tables", "analyze_query", "database_health"]


@pytest.fixture(scope="module")
def target(pg, tmp_path_factory):
    proc = start_server(pg.readonly_url, tmp_path_factory.mktemp("inspector"), workers=2, threads=4)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def inspector(tmp_path_factory):
    """Run `mcp-inspector --cli URL ...`; returns (exit code, parsed stdout, stderr)."""
    tools = node_tools()
    home = tmp_path_factory.mktemp("inspector-home")  # it keeps a catalog and storage under $HOME

    def run(url: str, *args: str) -> tuple[int, Any, str]:
        done = tools.run(tools.inspector, "--cli", url, "--transport", "http", *args, "--format", "json",
                         "--quiet", timeout=60, env={"HOME": str(home)})
        try:
            return done.returncode, json.loads(done.stdout), done.stderr
        except ValueError:
            raise AssertionError(f"inspector exited {done.returncode}: {done.stdout[-2000:]}\n"
                                 f"{done.stderr[-2000:]}") from None

    return run


def _served(target: Any, method: str) -> list[dict[str, Any]]:
    return [line for line in target.log_lines() if line.get("mcp_method") == method and line.get("status") == 200]


def test_tools_list(target, inspector):
    code, output, stderr = inspector(target.url, "--method", "tools/list")
    assert code == 0, stderr
    tools = output["result"]["tools"]
    assert [tool["name"] for tool in tools] == BUILT_IN_TOOLS
    assert all(tool["annotations"]["readOnlyHint"] for tool in tools)
    assert {line["mcp_version"] for line in _served(target, "tools/list")} == {"2025-11-25"}


def test_tools_call(target, inspector):
    code, output, stderr = inspector(target.url, "--method", "tools/call", "--tool-name", "query", "--tool-args-json",
                                     '{"sql": "SELECT name, email FROM users WHERE id = $1", "params": [3]}')
    assert code == 0, stderr
    result = output["result"]
    assert result["isError"] is False
    assert result["structuredContent"]["rows"] == [{"name": "User 3", "email": "user3@example.com"}]
    assert json.loads(result["content"][0]["text"]) == result["structuredContent"]


def test_a_refused_statement_is_reported_as_a_tool_error(target, inspector):
    code, _, stderr = inspector(target.url, "--method", "tools/call", "--tool-name", "query",
                                "--tool-arg", "sql=DROP TABLE users")
    assert code != 0
    assert json.loads(stderr)["error"]["code"] == "tool_is_error"


def test_the_2026_era(target, inspector):
    code, output, stderr = inspector(target.url, "--protocol-era", "modern", "--method", "tools/call", "--tool-name",
                                     "query", "--tool-args-json", '{"sql": "SELECT count(*) AS n FROM orders"}')
    assert code == 0, stderr
    assert output["result"]["structuredContent"]["rows"] == [{"n": 200}]
    assert output["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "postgres-mcp-server"
    modern = [line for line in target.log_lines() if line.get("mcp_era") == "modern"]
    assert {"server/discover", "tools/call"} <= {line["mcp_method"] for line in modern}
    assert {line["mcp_version"] for line in modern} == {"2026-07-28"}


def test_tool_schemas_have_no_portability_errors(target, inspector):
    """--strict: exit 6 on any error-severity schema problem (warnings, e.g. nullable type arrays, are allowed)."""
    code, _, stderr = inspector(target.url, "--method", "tools/list", "--strict")
    assert code == 0, stderr
    assert "0 errors" in stderr
