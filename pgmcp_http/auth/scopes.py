"""Which OAuth scopes a call needs: scopes that mean something for a database.

- ``db.schema``: the catalog (``list_tables``, ``describe_table``, resources,
  completions): names, types and definitions, never a row;
- ``db.read``: row data through the guard (``query``, ``analyze_query``,
  ``database_health``, which shows other sessions' statements, and custom tools);
- ``db.write``: additionally, for a call that would write (``READ_ONLY=false``).

OAUTH_TOOL_SCOPES replaces a tool's scopes. A scope only caps what a caller
may attempt: the PostgreSQL role it runs as still decides what succeeds.
Protocol methods that touch no data (``initialize``, ``tools/list``,
``prompts/*``, ``ping``...) need a valid token and no scope, so that a client
can always see every tool and ask for more. A refusal names the baseline
(OAUTH_SCOPES) together with what the call needs, in one challenge, since
some clients replace their scopes with the challenged ones instead of adding them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from pgmcp_http.config import ConfigError

__all__ = ["READ", "SCHEMA", "WRITE", "ScopePolicy"]

SCHEMA = "db.schema"
READ = "db.read"
WRITE = "db.write"

CATALOG_TOOLS = frozenset({"list_tables", "describe_table"})
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "resources/list": (SCHEMA,),
    "resources/read": (SCHEMA,),
    "completion/complete": (SCHEMA,),
}


class ScopePolicy:
    """The scopes each method and tool needs, and the baseline a client is told to ask for."""

    def __init__(self, *, baseline: Iterable[str], tool_scopes: Mapping[str, tuple[str, ...]],
                 tools: Collection[str]) -> None:
        unknown = [name for name in tool_scopes if name not in tools]
        if unknown:
            raise ConfigError(f"OAUTH_TOOL_SCOPES: {unknown[0]!r} is not a tool of this server; its tools are "
                              f"{', '.join(sorted(tools))}")
        self.baseline = tuple(baseline)
        self._tools = {name: tool_scopes.get(name) or ((SCHEMA,) if name in CATALOG_TOOLS else (READ,))
                       for name in tools}

    def needed(self, method: str | None, tool: str | None = None, *, writes: bool = False) -> tuple[str, ...]:
        """The scopes one call needs (empty: any valid token will do)."""
        if method != "tools/call":
            return METHOD_SCOPES.get(method or "", ())
        scopes = self._tools.get(tool or "", (READ,))  # an unknown tool gets "unknown tool" once admitted
        return (*scopes, WRITE) if writes and WRITE not in scopes else scopes

    def missing(self, granted: frozenset[str], needed: tuple[str, ...]) -> bool:
        """Whether ``granted`` lacks any of ``needed``."""
        return not granted.issuperset(needed)

    def challenge(self, needed: tuple[str, ...]) -> tuple[str, ...]:
        """The scopes a refusal names: the baseline, then what this call needs beyond it."""
        return tuple(dict.fromkeys((*self.baseline, *needed)))
