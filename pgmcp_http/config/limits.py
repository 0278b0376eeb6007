"""The Limits group's parts that need more than a number: which built-in tools are turned off, and each
caller's fair share (calls at once per worker, calls per minute)."""

from __future__ import annotations

import re

from pgmcp_http.config.reader import ConfigError, Reader

__all__ = ["TOOL_NAME", "caller_max_concurrent", "caller_rate_limit", "disabled_tools"]

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


_OFF = {"0", "off"}


def caller_max_concurrent(reader: Reader) -> int | None:
    """CALLER_MAX_CONCURRENT: None when unset (the default is derived: see ``Settings.caller_cap``), 0 for no
    cap, else the calls one caller may have running at once in a worker."""
    value = reader.raw("CALLER_MAX_CONCURRENT")
    if value is None:
        return None
    if value.lower() in _OFF:
        return 0
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 10_000:
        raise ConfigError(f"CALLER_MAX_CONCURRENT={value!r} is not a number of calls; use a whole number from 1 "
                          "to 10000 (calls at once per caller in each worker), or off for no cap")
    return int(value)


def caller_rate_limit(reader: Reader) -> int | None:
    """CALLER_RATE_LIMIT: calls per minute per caller for the whole container, None (unset, 0 or off) for
    no rate."""
    value = reader.raw("CALLER_RATE_LIMIT")
    if value is None or value.lower() in _OFF:
        return None
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 1_000_000:
        raise ConfigError(f"CALLER_RATE_LIMIT={value!r} is not a rate; use a whole number of calls per minute per "
                          "caller, from 1 to 1000000, or off for no rate")
    return int(value)
