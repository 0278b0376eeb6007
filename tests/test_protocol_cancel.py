"""notifications/cancelled stops a running tools/call on PostgreSQL, from any worker or replica,
and only for the client that sent the request."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from tests.helpers import MODERN, initialize, modern_meta, rpc, session_rpc, start_server

SLEEP = {"name": "query", "arguments": {"sql": "SELECT pg_sleep(30) AS slept"}}
TOKEN_A = "cancel-token-a-" + "0123456789abcdef"
TOKEN_B = "cancel-token-b-" + "fedcba9876543210"


@pytest.fixture(scope="module")
def replicas(pg, tmp_path_factory):
    """Two separately started servers sharing one SESSION_SECRET: a notification sent to the second
    reaches a process that never saw the request."""
    first = start_server(pg.readonly_url, tmp_path_factory.mktemp("cancel-a"), workers=2, threads=4)
    second = start_server(pg.readonly_url, tmp_path_factory.mktemp("cancel-b"), workers=1, threads=2)
    yield first, second
    first.stop()
    second.stop()


class Running:
    """A request sent in the background; ``result`` and ``seconds`` once it has answered."""

    def __init__(self, send: Any) -> None:
        self.result: Any = None
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._run, args=(send,), daemon=True)
        self._thread.start()

    def _run(self, send: Any) -> None:
        started = time.monotonic()
        self.result = send()
        self.seconds = time.monotonic() - started

    def join(self, timeout: float = 40) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the request never answered"
        return self.result


def sleeping(pg) -> int:
    with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
        (count,) = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' "
                                "AND state = 'active' AND pid <> pg_backend_pid()").fetchone()
    return int(count)


def wait_until_running(pg, expected: int = 1) -> None:
    deadline = time.monotonic() + 10
    while sleeping(pg) < expected:
        assert time.monotonic() < deadline, "the query never started"
        time.sleep(0.05)


def cancel_in_session(url: str, session: str, version: str, request_id: Any) -> None:
    reply = rpc(url, "notifications/cancelled", {"requestId": request_id, "reason": "no longer needed"}, id=None,
                headers={"Mcp-Session-Id": session, "MCP-Protocol-Version": version})
    assert reply.status == 202


def modern_call(url: str, request_id: Any, headers: dict[str, str] | None = None) -> Any:
    return rpc(url, "tools/call", {**SLEEP, "_meta": modern_meta()}, id=request_id,
               headers={"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "query",
                        **(headers or {})})


def modern_cancel(url: str, request_id: Any, headers: dict[str, str] | None = None) -> None:
    reply = rpc(url, "notifications/cancelled", {"requestId": request_id, "_meta": modern_meta()}, id=None,
                headers={"MCP-Protocol-Version": MODERN, "Mcp-Method": "notifications/cancelled",
                         **(headers or {})})
    assert reply.status == 202, reply.body


def assert_cancelled(pg, call: Running) -> None:
    reply = call.join()
    assert reply.status == 200 and reply.body["result"]["isError"] is True
    assert "cancelled" in reply.body["result"]["content"][0]["text"]
    assert call.seconds < 2 + 1  # cancelled well before the 30 s the query asked for
    time.sleep(0.2)
    assert sleeping(pg) == 0


def test_a_session_cancels_its_call_through_another_replica(pg, replicas):
    first, second = replicas
    session, version = initialize(first.url, "2025-11-25")
    call = Running(lambda: session_rpc(first.url, session, version, "tools/call", SLEEP, id=7))
    wait_until_running(pg)
    started = time.monotonic()
    cancel_in_session(second.url, session, version, 7)
    assert_cancelled(pg, call)
    assert time.monotonic() - started < 2


def test_every_handshake_revision_that_defines_it(pg, replicas):
    first, _ = replicas
    for version in ("2024-11-05", "2025-03-26", "2025-06-18"):
        session, negotiated = initialize(first.url, version)
        call = Running(lambda s=session, v=negotiated: session_rpc(first.url, s, v, "tools/call", SLEEP, id="job-1"))
        wait_until_running(pg)
        cancel_in_session(first.url, session, negotiated, "job-1")
        assert_cancelled(pg, call)


def test_another_session_cannot_cancel_it(pg, replicas):
    first, second = replicas
    owner, version = initialize(first.url, "2025-11-25")
    stranger, _ = initialize(second.url, "2025-11-25")
    short = {"name": "query", "arguments": {"sql": "SELECT pg_sleep(1.5) AS slept"}}
    call = Running(lambda: session_rpc(first.url, owner, version, "tools/call", short, id=9))
    time.sleep(0.4)
    cancel_in_session(second.url, stranger, version, 9)
    reply = call.join()
    assert reply.body["result"]["isError"] is False and call.seconds >= 1.4


def test_the_modern_era_cancels_by_credential(pg, tmp_path):
    server = start_server(pg.readonly_url, tmp_path, workers=2, threads=4,
                          env={"AUTH_TOKENS": f"{TOKEN_A},{TOKEN_B}"})
    try:
        owner = {"Authorization": f"Bearer {TOKEN_A}"}
        call = Running(lambda: modern_call(server.url, "q-1", owner))
        wait_until_running(pg)
        modern_cancel(server.url, "q-1", {"X-API-Key": TOKEN_B})  # someone else's token: nothing happens
        time.sleep(0.5)
        assert sleeping(pg) == 1
        modern_cancel(server.url, "q-1", {"X-API-Key": TOKEN_A})  # the same credential, another header
        assert_cancelled(pg, call)
    finally:
        server.stop()


def test_cancelling_something_finished_or_unknown_is_harmless(replicas):
    first, _ = replicas
    session, version = initialize(first.url, "2025-11-25")
    assert session_rpc(first.url, session, version, "tools/call", {"name": "query", "arguments": {
        "sql": "SELECT 1 AS one"}}, id=3).body["result"]["isError"] is False
    cancel_in_session(first.url, session, version, 3)
    cancel_in_session(first.url, session, version, 12345)
    reply = rpc(first.url, "notifications/cancelled", {"requestId": {"not": "an id"}}, id=None,
                headers={"Mcp-Session-Id": session, "MCP-Protocol-Version": version})
    assert reply.status == 202
    assert session_rpc(first.url, session, version, "ping", {}, id=4).status == 200


def test_without_authentication_the_modern_era_cannot_cancel(pg, replicas):
    """No credential, no identity: a guessed request id must not stop someone else's call."""
    first, _ = replicas
    short = {"name": "query", "arguments": {"sql": "SELECT pg_sleep(1.5) AS slept"}, "_meta": modern_meta()}
    call = Running(lambda: rpc(first.url, "tools/call", short, id=1,
                               headers={"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call",
                                        "Mcp-Name": "query"}))
    time.sleep(0.4)
    modern_cancel(first.url, 1)
    reply = call.join()
    assert reply.body["result"]["isError"] is False and call.seconds >= 1.4
