"""How new connections spread over the workers (the worker's fair accepts)."""

from __future__ import annotations

import contextlib
import http.client
import time

from tests.helpers import ServerProcess, scrape, start_server, total, wait_until


def _served_by(server: ServerProcess, conn: http.client.HTTPConnection) -> int:
    """The pid of the worker that answered a request on ``conn`` (the connection stays open)."""
    conn.request("GET", "/livez")
    reply = conn.getresponse()
    reply.read()
    assert reply.status == 200
    request_id = reply.getheader("X-Request-Id")
    line = wait_until(lambda: next((line for line in server.log_lines() if line.get("request_id") == request_id
                                    and line.get("message") == "request"), None), what="the access line")
    return int(line["worker_pid"])


def test_a_worker_with_a_connection_per_thread_leaves_the_next_connection_to_an_idle_worker(pg, tmp_path):
    """One thread per worker: the worker already holding a keep-alive connection steps aside, so the
    next connection goes to the idle worker (without it, whichever worker wakes first takes it)."""
    server = start_server(pg.readonly_url, tmp_path, workers=2, threads=1)
    try:
        wait_until(lambda: total(scrape(server), "postgres_mcp_workers") == 2, what="2 live workers")
        spread = []
        for _ in range(6):
            time.sleep(0.3)  # the previous round's connections are closed and counted out
            with contextlib.closing(http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)) as first, \
                    contextlib.closing(http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)) as second:
                spread.append(_served_by(server, first) != _served_by(server, second))
        assert sum(spread) >= 5, spread
    finally:
        server.stop()
