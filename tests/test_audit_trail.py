"""The audit trail: exactly one record per tools/call and resources/read, whatever the outcome.

One live server (4 workers) over the identity database writes AUDIT_LOG to a
file; each call carries its own X-Request-Id so its records can be counted.
No record may hold a token, a password or a parameter value.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ServerProcess, modern_rpc, request, rpc, start_server, wait_until
from tests.identity_fixtures import ANALYST, TOKENS, prepare

FIELDS = {"time", "request_id", "trace_id", "subject", "role", "issuer", "client_id", "scopes", "client_name",
          "client_version", "protocol_version",
          "method", "tool", "resource", "sql_fingerprint", "sql", "param_count", "param_types", "rows", "bytes",
          "truncated", "node", "node_role", "duration_ms", "outcome", "reason"}
SECRET_PARAM = "pv-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def audited(pg, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("audit")
    idb = prepare(pg, workdir)
    log = workdir / "audit.jsonl"
    server = start_server(idb.login_url, workdir, workers=4, threads=8,
                          env={"AUTH_TOKENS_FILE": str(idb.tokens_file), "AUDIT_LOG": str(log),
                               "QUERY_TIMEOUT": "1000", "REQUEST_QUEUE_LIMIT": "1000",
                               # 32 clients of 3 callers on pools of 2: the fair share would refuse some
                               # (tests/test_fair_share.py); here every call must run and leave its record.
                               "CALLER_MAX_CONCURRENT": "off"})
    yield server, log, idb
    server.stop()


def records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def of(log: Path, request_id: str) -> list[dict[str, Any]]:
    return [record for record in records(log) if record["request_id"] == request_id]


def one(log: Path, request_id: str) -> dict[str, Any]:
    found = wait_until(lambda: of(log, request_id), what=f"the audit record of {request_id}")
    time.sleep(0.05)
    found = of(log, request_id)
    assert len(found) == 1, found
    assert set(found[0]) == FIELDS
    return found[0]


def port_of(server: ServerProcess) -> str:
    """The port of the database the server is given (the node its calls run on)."""
    return server.env["DATABASE_URL"].rsplit(":", 1)[1].split("/")[0]


def headers(who: str, request_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}", "X-Request-Id": request_id}


def modern_call(server, who: str, name: str, arguments: dict[str, Any], request_id: str, *, id: Any = 1,
                meta: dict[str, Any] | None = None) -> Any:
    return modern_rpc(server.url, "tools/call", {"name": name, "arguments": arguments, **(meta or {})}, id=id,
                      headers=headers(who, request_id)).body


def test_each_outcome_writes_one_record(audited):
    server, log, _ = audited
    body = modern_call(server, "alice", "query", {"sql": "SELECT id FROM docs WHERE body <> $1 ORDER BY id",
                                                  "params": [SECRET_PARAM]}, "ok-1")
    assert body["result"]["isError"] is False
    ok = one(log, "ok-1")
    assert ok | {"time": None, "duration_ms": None, "bytes": None, "sql_fingerprint": None} == {
        "time": None, "request_id": "ok-1", "trace_id": None, "subject": "alice", "role": ANALYST, "issuer": None,
        "client_id": None, "scopes": None,
        "client_name": "raw-test", "client_version": "0", "protocol_version": "2026-07-28", "method": "tools/call",
        "tool": "query", "resource": None, "sql_fingerprint": None,
        "sql": "SELECT id FROM docs WHERE body <> $1 ORDER BY id", "param_count": 1, "param_types": ["string"],
        "rows": 2, "bytes": None, "truncated": False, "node": f"127.0.0.1:{port_of(server)}",
        "node_role": "primary", "duration_ms": None, "outcome": "ok", "reason": None}
    assert ok["bytes"] > 50 and ok["duration_ms"] > 0 and len(ok["sql_fingerprint"]) == 16

    modern_call(server, "alice", "query", {"sql": "DELETE FROM docs"}, "refused-1")
    refused = one(log, "refused-1")
    assert (refused["outcome"], refused["node"], refused["node_role"]) == ("refused", None, None)  # nothing ran
    modern_call(server, "dave", "query", {"sql": "SELECT * FROM docs"}, "denied-1")
    denied = one(log, "denied-1")
    assert (denied["outcome"], denied["role"]) == ("error", "nobody13")
    assert denied["node_role"] == "primary"  # PostgreSQL answered it, with an error
    assert "permission denied for table docs" in denied["reason"]
    modern_call(server, "alice", "query", {"sql": "SELECT $1::int AS n", "params": [SECRET_PARAM]}, "cast-1")
    cast = one(log, "cast-1")
    assert cast["outcome"] == "error" and "invalid input syntax" in cast["reason"] and SECRET_PARAM not in str(cast)
    modern_call(server, "alice", "no_such_tool", {}, "unknown-1")
    unknown = one(log, "unknown-1")
    assert (unknown["outcome"], unknown["tool"]) == ("error", "no_such_tool") and "unknown tool" in unknown["reason"]
    modern_call(server, "alice", "query", {"sql": "SELECT pg_sleep(3)"}, "timeout-1")
    assert one(log, "timeout-1")["outcome"] == "timeout"
    modern_call(server, "frank", "query", {"sql": "SELECT 1"}, "unmapped-1")
    frank = one(log, "unmapped-1")
    assert (frank["subject"], frank["role"], frank["outcome"]) == ("frank", None, "ok")  # the login role

    read = modern_rpc(server.url, "resources/read", {"uri": "postgres://table/public/docs"},
                      headers=headers("carol", "read-1"))
    assert "result" in read.body
    resource = one(log, "read-1")
    assert (resource["method"], resource["resource"], resource["outcome"], resource["tool"]) == (
        "resources/read", "postgres://table/public/docs", "ok", None)
    missing = modern_rpc(server.url, "resources/read", {"uri": "postgres://table/public/nope"},
                         headers=headers("carol", "read-2"))
    assert "error" in missing.body and one(log, "read-2")["outcome"] == "error"

    status, _, _ = request("POST", f"{server.base}/mcp/tools/call", {"name": "list_tables", "arguments": {}},
                           headers={"Content-Type": "application/json", **headers("bob", "rest-1")})
    assert status == 200
    rest = one(log, "rest-1")
    assert (rest["subject"], rest["tool"], rest["protocol_version"], rest["sql"]) == ("bob", "list_tables", None, None)

    init = rpc(server.url, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                          "clientInfo": {"name": "handshake-client", "version": "9.1"}},
               headers=headers("bob", "init-1"))
    session = init.headers["mcp-session-id"]
    rpc(server.url, "tools/call", {"name": "query", "arguments": {"sql": "SELECT 1 AS x"}},
        headers={**headers("bob", "session-1"), "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"})
    handshake = one(log, "session-1")
    assert (handshake["client_name"], handshake["client_version"], handshake["protocol_version"]) == (
        "handshake-client", "9.1", "2025-11-25")
    # tools/list, prompts and notifications are not audited
    modern_rpc(server.url, "tools/list", {}, headers=headers("alice", "list-1"))
    time.sleep(0.2)
    assert of(log, "list-1") == []


def test_cancelled_and_hung_up_calls_write_one_record_each(audited):
    server, log, _ = audited
    worker = threading.Thread(target=modern_call, args=(server, "alice", "query", {"sql": "SELECT pg_sleep(5)"},
                                                        "cancel-1"), kwargs={"id": "c-1"})
    worker.start()
    time.sleep(0.5)
    modern_rpc(server.url, "notifications/cancelled", {"requestId": "c-1"}, id=None,
               headers=headers("alice", "cancel-note"))
    worker.join(10)
    assert one(log, "cancel-1")["outcome"] == "cancelled"

    with pytest.raises(OSError):  # the client gives up long before the statement ends
        request("POST", server.url, {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                                     "params": {"name": "query", "arguments": {"sql": "SELECT pg_sleep(0.8)"},
                                                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                                          "io.modelcontextprotocol/clientCapabilities": {}}}},
                headers={"Content-Type": "application/json", "Accept": "application/json",
                         "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "query",
                         **headers("alice", "hangup-1")}, timeout=0.2)
    assert one(log, "hangup-1")["outcome"] in ("ok", "cancelled")
    assert "sql_fingerprint" not in server.log_path.read_text()  # its own file, not the application log


def test_500_concurrent_calls_over_four_workers_write_500_records(audited):
    server, log, idb = audited
    batch = uuid.uuid4().hex[:8]

    def call(number: int) -> int:
        status, _, _ = request("POST", f"{server.base}/mcp/tools/call",
                               {"name": "query", "arguments": {"sql": "SELECT count(*) AS n FROM docs WHERE id > $1",
                                                               "params": [number]}},
                               headers={"Content-Type": "application/json",
                                        **headers(("alice", "bob", "carol")[number % 3], f"{batch}-{number}")})
        return status

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(call, range(500)))
    assert statuses == [200] * 500
    wanted = {f"{batch}-{number}" for number in range(500)}
    found = wait_until(lambda: [r for r in records(log) if r["request_id"] in wanted] if len(
        [r for r in records(log) if r["request_id"] in wanted]) >= 500 else None, what="500 audit records")
    assert len(found) == 500 and {r["request_id"] for r in found} == wanted
    assert all(r["outcome"] == "ok" and r["param_types"] == ["number"] for r in found)

    text = log.read_text()
    for secret in [*TOKENS.values(), idb.login_password, SECRET_PARAM]:
        assert secret not in text
