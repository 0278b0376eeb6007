"""The built-in tools, in the order ``tools/list`` shows them."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from pgmcp_http.config import ConfigError
from pgmcp_http.tools.analyze_query import ANALYZE_QUERY
from pgmcp_http.tools.database_health import DATABASE_HEALTH
from pgmcp_http.tools.describe_table import DESCRIBE_TABLE
from pgmcp_http.tools.list_tables import LIST_TABLES
from pgmcp_http.tools.query import query_tool
from pgmcp_http.tools.spec import ToolSpec

__all__ = ["builtin_tools", "server_tools"]


def builtin_tools(*, read_only: bool) -> list[ToolSpec]:
    """The guide's four tools and database_health, with the query tool described for the server's mode."""
    return [query_tool(read_only=read_only), DESCRIBE_TABLE, LIST_TABLES, ANALYZE_QUERY, DATABASE_HEALTH]


def server_tools(*, read_only: bool, disabled: Collection[str] = (), custom: Sequence[ToolSpec] = ()) -> list[ToolSpec]:
    """The tools this server offers: the built-in ones minus DISABLE_TOOLS, then those of TOOLS_FILE.

    A DISABLE_TOOLS entry that names no built-in tool stops start-up: a typo
    there would otherwise leave on the very tool the operator meant to switch off.
    """
    builtins = builtin_tools(read_only=read_only)
    names = [spec.name for spec in builtins]
    for name in disabled:
        if name not in names:
            raise ConfigError(f"DISABLE_TOOLS: {name!r} is not a built-in tool; built-in tools are {', '.join(names)} "
                              "(to drop a custom tool, remove it from TOOLS_FILE)")
    return [spec for spec in builtins if spec.name not in disabled] + list(custom)
