"""The benchmark's one statement and the requests that carry it, in each shape measured.

The statement is pgbench's own select-only transaction (a primary-key lookup
in ``pgbench_accounts``, 100,000 rows at scale 1), so ``pgbench -S`` on the
same cluster gives a reference no Python client can beat. Every HTTP target
receives the same statement with a random key in ``params``.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
from typing import Any

import harness

__all__ = [
    "KEYS",
    "MARKER",
    "MODERN",
    "SQL",
    "SQL_PSYCOPG2",
    "modern_call",
    "naive_call",
    "prepare_pgbench",
    "session_call",
    "start_session",
]

KEYS = 100_000
SQL = "SELECT aid, bid, abalance FROM pgbench_accounts WHERE aid = $1"
SQL_PSYCOPG2 = SQL.replace("$1", "%s")
MARKER = "abalance"
MODERN = "2026-07-28"
HANDSHAKE = "2025-11-25"
_KEY_ARG = '"params": [{KEY}]'


def prepare_pgbench(db: harness.BenchDatabase) -> None:
    """pgbench's tables at scale 1 in the sample database, readable by the server's role."""
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        raise RuntimeError("pgbench not found (Debian's postgresql-client-15)")
    cmd = [pgbench, "-i", "-s", "1", "-q", "-d", db.cluster.superuser_dsn("sampledb")]
    subprocess.run(cmd, check=True, capture_output=True)  # trust over the Unix socket: any OS user
    db.psql("GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers TO mcp_readonly; ANALYZE;")


def _arguments() -> str:
    return '{"sql": ' + json.dumps(SQL) + ", " + _KEY_ARG + "}"


def modern_call() -> tuple[str, dict[str, str]]:
    """``tools/call query`` in the 2026-07-28 envelope: body and routing headers."""
    meta = json.dumps({"io.modelcontextprotocol/protocolVersion": MODERN,
                       "io.modelcontextprotocol/clientCapabilities": {},
                       "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"}})
    body = ('{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "query", "arguments": '
            + _arguments() + ', "_meta": ' + meta + "}}")
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "query"}
    return body, headers


def start_session(port: int) -> str:
    """``initialize`` (2025-11-25) plus ``notifications/initialized``; returns the Mcp-Session-Id."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": HANDSHAKE, "capabilities": {},
                       "clientInfo": {"name": "bench", "version": "0"}}}
    reply = _post(port, "/mcp", init, headers)
    session = reply.getheader("Mcp-Session-Id")
    if reply.status != 200 or not session:
        raise RuntimeError(f"initialize failed: {reply.status}")
    notified = _post(port, "/mcp", {"jsonrpc": "2.0", "method": "notifications/initialized"},
                     {**headers, "Mcp-Session-Id": session, "MCP-Protocol-Version": HANDSHAKE})
    if notified.status != 202:
        raise RuntimeError(f"notifications/initialized answered {notified.status}")
    return session


def session_call(session: str) -> tuple[str, dict[str, str]]:
    """``tools/call query`` on a 2025-11-25 session."""
    body = ('{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "query", "arguments": '
            + _arguments() + "}}")
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "Mcp-Session-Id": session, "MCP-Protocol-Version": HANDSHAKE}
    return body, headers


def naive_call() -> tuple[str, dict[str, str]]:
    """The same JSON-RPC message for the naive baseline (it reads ``params.arguments`` only)."""
    body = ('{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "query", "arguments": '
            + _arguments() + "}}")
    return body, {"Content-Type": "application/json"}


def list_call() -> tuple[str, dict[str, str]]:
    """``tools/list`` in the 2026-07-28 envelope."""
    meta = json.dumps({"io.modelcontextprotocol/protocolVersion": MODERN,
                       "io.modelcontextprotocol/clientCapabilities": {},
                       "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"}})
    body = '{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": ' + meta + "}}"
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"}
    return body, headers


def _post(port: int, path: str, message: dict[str, Any], headers: dict[str, str]) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, json.dumps(message), headers)
        reply = conn.getresponse()
        reply.read()
        return reply
    finally:
        conn.close()
