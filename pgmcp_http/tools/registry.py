"""The built-in tools, in the order ``tools/list`` shows them."""

from __future__ import annotations

from pgmcp_http.tools.analyze_query import ANALYZE_QUERY
from pgmcp_http.tools.database_health import DATABASE_HEALTH
from pgmcp_http.tools.describe_table import DESCRIBE_TABLE
from pgmcp_http.tools.list_tables import LIST_TABLES
from pgmcp_http.tools.query import query_tool
from pgmcp_http.tools.spec import ToolSpec

__all__ = ["builtin_tools"]


def builtin_tools(*, read_only: bool) -> list[ToolSpec]:
    """The guide's four tools and database_health, with the query tool described for the server's mode."""
    return [query_tool(read_only=read_only), DESCRIBE_TABLE, LIST_TABLES, ANALYZE_QUERY, DATABASE_HEALTH]
