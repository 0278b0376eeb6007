"""The registration body the TAS federation accepts (its Go ``MCPServer`` struct, as JSON).

Facts from the federation's source that shape it (the design guide's example
got some wrong):

- ``health_check.interval`` and ``timeout`` are Go ``time.Duration`` values:
  integer **nanoseconds**. A string such as ``"30s"`` makes the whole
  registration fail to decode.
- ``health_check.path`` is appended to ``endpoint``, so ``endpoint`` is the
  base URL with no path and no trailing slash.
- Auth ``api_key`` sends ``config.key`` in the header ``config.header``
  (``X-API-Key`` when absent); ``bearer`` has no provider in the federation
  (``jwt`` with ``config.token`` is what sends ``Authorization: Bearer``).
  The federation sends the same auth on its health checks.
- ``metadata`` is a map of strings only.

The health check path is ``/readyz``: the federation stops routing to a
member that fails it, which is exactly what readiness means here (PostgreSQL
unreachable, or the worker shutting down). ``/livez`` would keep a member that
cannot answer any query in rotation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pgmcp_http import SERVICE_NAME, __version__

__all__ = ["DEFAULT_HEALTH_PATH", "HEALTH_INTERVAL_NS", "HEALTH_TIMEOUT_NS", "registration_body"]

DEFAULT_HEALTH_PATH = "/readyz"
SECOND_NS = 1_000_000_000
HEALTH_INTERVAL_NS = 30 * SECOND_NS
# Above HEALTH_CHECK_TIMEOUT (2 s) plus libpq's 2 s minimum connect timeout, so a
# slow database reads as "not ready" (503) rather than as a federation timeout.
HEALTH_TIMEOUT_NS = 10 * SECOND_NS


def registration_body(*, server_id: str, endpoint: str, tools: Iterable[str], auth_header: str,
                      token: str | None, read_only: bool) -> dict[str, Any]:
    """The JSON object to POST to ``/api/v1/federation/servers`` for this server.

    ``tools`` become ``capabilities`` (the tool names the federation may call
    through ``/mcp/tools/call``); ``token`` is one of the server's AUTH_TOKENS,
    given to the federation to send back in ``auth_header`` (None when the
    server takes no tokens).
    """
    auth: dict[str, Any] = (
        {"type": "api_key", "config": {"header": auth_header, "key": token}}
        if token else {"type": "none", "config": {}}
    )
    return {
        "id": server_id,
        "name": "PostgreSQL MCP Server",
        "description": ("Read-only SQL, schema inspection and query plans for a PostgreSQL database"
                        if read_only else "SQL, schema inspection and query plans for a PostgreSQL database"),
        "version": __version__,
        "category": "database",
        "endpoint": endpoint.rstrip("/"),
        "protocol": "http",
        "auth": auth,
        "capabilities": list(tools),
        "tags": ["postgresql", "sql", "read-only" if read_only else "read-write"],
        "metadata": {"service": SERVICE_NAME, "mcp_path": "/mcp", "read_only": "true" if read_only else "false"},
        "health_check": {
            "enabled": True,
            "path": DEFAULT_HEALTH_PATH,
            "interval": HEALTH_INTERVAL_NS,
            "timeout": HEALTH_TIMEOUT_NS,
            "healthy_threshold": 2,
            "unhealthy_threshold": 3,
        },
    }
