"""A client that hangs up mid-query: its statement is cancelled on PostgreSQL soon after.

Without this, ``SELECT pg_sleep(30)`` from a client that gave up would hold a
backend and a pool slot until QUERY_TIMEOUT. A client that stays connected is
never cancelled, however long its call takes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import psycopg2
import pytest

from pgmcp_http.serving.disconnect import DisconnectWatcher, peer_closed
from tests.faults import active_statements, raw_call, rest_call
from tests.helpers import scrape, start_server, total, wait_until

pytestmark = pytest.mark.faults

CANCEL_WITHIN_S = 5  # the watcher looks every 0.2 s; generous for a loaded machine


def test_peer_closed_sees_a_close_but_not_pending_bytes():
    ours, theirs = socket.socketpair()
    try:
        assert not peer_closed(ours)
        theirs.sendall(b"GET / HTTP/1.1\r\n")  # a pipelined request: still there afterwards
        assert not peer_closed(ours)
        assert ours.recv(100) == b"GET / HTTP/1.1\r\n"
        theirs.close()
        assert peer_closed(ours)
    finally:
        ours.close()


def test_the_watcher_cancels_only_the_thread_whose_client_left():
    cancelled: list[int] = []
    watcher = DisconnectWatcher(cancel=lambda thread_id: cancelled.append(thread_id) or True, interval_s=0.05)
    gone, gone_peer = socket.socketpair()
    stays, stays_peer = socket.socketpair()
    release = threading.Event()
    idents: dict[str, int] = {}

    def serve(name: str, sock: socket.socket) -> None:
        idents[name] = threading.get_ident()
        with watcher.watch(sock):
            release.wait(5)

    threads = [threading.Thread(target=serve, args=(name, sock)) for name, sock in (("gone", gone), ("stays", stays))]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.1)
        assert watcher.check() == 0
        gone_peer.close()
        wait_until(lambda: cancelled, timeout=5, what="the cancel")
        time.sleep(0.2)
        assert cancelled == [idents["gone"]]  # once, and only that thread
    finally:
        release.set()
        for thread in threads:
            thread.join()
        for sock in (gone, stays, stays_peer):
            sock.close()
    assert watcher.check() == 0  # nothing in flight any more


def test_a_client_that_disconnects_mid_query_gets_its_statement_cancelled(pg, tmp_path):
    server = start_server(pg.readonly_url, tmp_path, workers=1, threads=4, env={"QUERY_TIMEOUT": "60000"})
    try:
        with contextlib.closing(psycopg2.connect(pg.superuser_dsn())) as admin:
            admin.autocommit = True
            client = raw_call(server.port, "SELECT pg_sleep(30) AS abandoned")
            wait_until(lambda: [s for s in active_statements(admin, "pg_sleep(30) AS abandoned") if s[1] == "active"],
                       what="the statement running")
            client.close()
            closed = time.monotonic()
            wait_until(lambda: not [s for s in active_statements(admin, "pg_sleep(30) AS abandoned")
                                    if s[1] == "active"], timeout=CANCEL_WITHIN_S, interval=0.05,
                       what="the abandoned statement cancelled")
            assert time.monotonic() - closed < CANCEL_WITHIN_S
        samples = wait_until(lambda: (lambda s: s if total(s, "postgres_mcp_tool_calls_total", outcome="cancelled")
                                      else None)(scrape(server)), what="the call counted as cancelled")
        assert total(samples, "postgres_mcp_tool_calls_total", outcome="cancelled") == 1
        assert total(samples, "postgres_mcp_connections_active") == 0
        # The worker, its pool and its connection are fine afterwards.
        assert all(rest_call(server.port, "SELECT 1 AS one").ok for _ in range(4))
    finally:
        server.stop()


def test_a_slow_call_whose_client_waits_is_not_cancelled(pg, tmp_path):
    server = start_server(pg.readonly_url, tmp_path, workers=1, threads=2)
    try:
        call = rest_call(server.port, "SELECT pg_sleep(1.2) AS waited")
        assert call.ok, call.text
        assert total(scrape(server), "postgres_mcp_tool_calls_total", outcome="cancelled") == 0
    finally:
        server.stop()


def test_a_slow_cancel_blocks_only_the_request_it_cancels():
    """Reaching PostgreSQL to cancel may be slow (a host that does not answer): other requests must go on,
    and the cancelled request must not end (and its thread serve another) before its cancel is sent."""
    sending = threading.Event()
    watcher = DisconnectWatcher(cancel=lambda thread_id: sending.set() or time.sleep(1.0) or True, interval_s=0.05)
    gone, gone_peer = socket.socketpair()
    other, other_peer = socket.socketpair()
    key = watcher.start(gone)
    gone_peer.close()
    checker = threading.Thread(target=watcher.check)
    time.sleep(0.06)
    checker.start()
    try:
        assert sending.wait(5)
        started = time.monotonic()
        watcher.stop(watcher.start(other))  # another request starts and ends at once
        assert time.monotonic() - started < 0.5
        watcher.stop(key)  # the cancelled one waits for its cancel to be sent
        assert time.monotonic() - started >= 0.8
    finally:
        checker.join()
        for sock in (gone, other, other_peer):
            sock.close()
    assert watcher.cancelled == 1
