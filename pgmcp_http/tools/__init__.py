"""Tools: one module per tool, each a spec plus a plain function over a transaction and arguments."""

from pgmcp_http.tools.registry import builtin_tools, server_tools
from pgmcp_http.tools.spec import ToolContext, ToolError, ToolSpec
from pgmcp_http.tools.toolbox import Toolbox, ToolOutcome, UnknownTool

__all__ = ["ToolContext", "ToolError", "ToolOutcome", "ToolSpec", "Toolbox", "UnknownTool", "builtin_tools",
           "server_tools"]
