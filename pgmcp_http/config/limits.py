"""The Limits group's parts that need more than a number: which built-in tools are turned off."""

from __future__ import annotations

import re

from pgmcp_http.config.reader import ConfigError, Reader

__all__ = ["TOOL_NAME", "disabled_tools"]

# MCP tool names: 1 to 128 of A-Z a-z 0-9 _ - . (the 2025-11-25 revision's rule).
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def disabled_tools(reader: Reader) -> tuple[str, ...]:
    """DISABLE_TOOLS as tool names; whether each names a built-in tool is checked where those are known."""
    value = reader.raw("DISABLE_TOOLS")
    if value is None:
        return ()
    names = [item.strip() for item in value.split(",") if item.strip()]
    for name in names:
        if not TOOL_NAME.match(name):
            raise ConfigError(f"DISABLE_TOOLS: {name!r} is not a tool name; list built-in tools separated by "
                              "commas, e.g. DISABLE_TOOLS=query,analyze_query")
    return tuple(dict.fromkeys(names))
