"""Too many slow calls for the pool, and a worker killed in the middle of a call.

Pool exhaustion: the callers beyond the pool's size get a clear "server busy"
within POOL_CONNECTION_TIMEOUT (never a hang, never a 5xx), the others finish,
and every connection goes back to the pool. A worker killed with SIGKILL:
gunicorn replaces it, its client gets no answer (nothing else can be done for
it), every other call succeeds and the metrics carry on counting.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest

from tests.faults import active_statements, raw_call, rest_call, worker_holding
from tests.helpers import request, scrape, start_server, total, wait_until, worker_pids

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_pool_exhaustion_answers_busy_within_the_timeout_and_every_connection_returns(pg, tmp_path):
    server = start_server(pg.readonly_url, tmp_path, workers=1, threads=8,
                          env={"MAX_CONNECTIONS": "2", "POOL_CONNECTION_TIMEOUT": "1000"})
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=6) as pool:
            futures = [pool.submit(rest_call, server.port, "SELECT pg_sleep(5)") for _ in range(6)]
            calls = [future.result(timeout=30) for future in futures]
        ends = sorted(call.at - started for call in calls)
        busy = [call for call in calls if not call.ok]
        assert sum(call.ok for call in calls) == 2
        assert len(busy) == 4
        for call in busy:
            assert call.status == 200 and call.result["isError"] is True
            assert "server busy: no database connection became free within 1 s" in call.text
        # The busy answers came after about POOL_CONNECTION_TIMEOUT, long before the slow calls ended
        # (wide margins: the machine may be busy with other work).
        assert all(0.8 <= end < 4.5 for end in ends[:4]), ends
        assert all(end < 15 for end in ends), ends  # nothing hung

        samples = scrape(server)
        assert total(samples, "postgres_mcp_connections_active") == 0
        assert total(samples, "postgres_mcp_connections_idle") == 2
        assert total(samples, "postgres_mcp_pool_waiting") == 0
        assert total(samples, "postgres_mcp_pool_timeouts_total") == 4
        assert total(samples, "postgres_mcp_tool_calls_total", tool="query", outcome="busy") == 4
        with contextlib.closing(psycopg2.connect(pg.superuser_dsn())) as conn:
            assert all(state == "idle" for _, state in active_statements(conn, "pg_sleep(5)"))
        assert all(rest_call(server.port, "SELECT 1 AS one").ok for _ in range(4))
    finally:
        server.stop()


def test_a_worker_killed_mid_request_is_replaced_and_service_goes_on(pg, tmp_path):
    server = start_server(pg.readonly_url, tmp_path, workers=2, threads=4)
    try:
        wait_until(lambda: len(worker_pids(server)) == 2, what="two workers")
        assert rest_call(server.port, "SELECT 1 AS one").ok
        before = total(scrape(server), "postgres_mcp_queries_total")
        victim_sock = raw_call(server.port, "SELECT pg_sleep(20) AS killed")
        with contextlib.closing(psycopg2.connect(pg.superuser_dsn())) as conn:
            conn.autocommit = True
            wait_until(lambda: active_statements(conn, "pg_sleep(20) AS killed"), what="the slow call running")
        workers = worker_pids(server)
        victim = worker_holding(server, victim_sock, workers)

        others: list[bool] = []
        stop = threading.Event()

        def keep_calling() -> None:
            while not stop.is_set():
                others.append(rest_call(server.port, "SELECT 1 AS one").ok)

        os.kill(victim, signal.SIGKILL)
        caller = threading.Thread(target=keep_calling)  # from the moment of the kill on, while it is replaced
        caller.start()
        victim_sock.settimeout(10)
        assert victim_sock.recv(65536) == b""  # its client gets no answer: the connection just closes
        victim_sock.close()
        replaced = wait_until(lambda: (lambda now: now if len(now) == 2 and victim not in now else None)(
            worker_pids(server)), timeout=20, what="gunicorn replacing the killed worker")
        time.sleep(1)
        stop.set()
        caller.join(timeout=30)

        assert others and all(others), f"{others.count(False)} of {len(others)} calls failed meanwhile"
        assert len(replaced - workers) == 1
        assert all(rest_call(server.port, "SELECT 1 AS one").ok for _ in range(6))
        samples = wait_until(lambda: (lambda s: s if total(s, "postgres_mcp_workers") == 2 else None)(scrape(server)),
                             what="the workers gauge back at 2")
        assert total(samples, "postgres_mcp_queries_total") >= before + len(others) + 6  # counts carried on
        assert request("GET", f"{server.base}/readyz")[0] == 200
        assert server.proc.poll() is None
    finally:
        server.stop()
