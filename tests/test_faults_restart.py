"""PostgreSQL goes away and comes back: under steady load, and before the server has ever reached it.

What a client must see: while PostgreSQL is down, every call is answered (HTTP
200) with a clean ``isError`` result saying the database is unavailable; no
worker dies; once PostgreSQL is back, calls succeed again within a few
seconds without restarting anything; and no caller afterwards pays for a
connection that died with the old server (the pool drops them at checkout,
so no call has to be retried and the pool's open connections are exactly
the backends PostgreSQL shows).
"""

from __future__ import annotations

import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.faults import Call, Load, rest_call, throwaway_cluster
from tests.helpers import request, scrape, start_server, total, wait_until, worker_pids

pytestmark = [pytest.mark.faults, pytest.mark.slow]

RECOVERY_S = 10  # "within a few seconds" with a wide margin for a loaded 2-core machine


def _clean_unavailable(call: Call) -> bool:
    return (call.status == 200 and call.result is not None and call.result.get("isError") is True
            and "database unavailable" in call.text)


def _retries_after(log_path: Path, wall: float) -> list[str]:
    lines = []
    for raw in log_path.read_text(errors="replace").splitlines():
        if "retrying tool" not in raw:
            continue
        record = json.loads(raw)
        stamp = time.mktime(time.strptime(record["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        if stamp >= wall:
            lines.append(record["message"])
    return lines


def _pool_backends(db: object) -> int:
    with contextlib.closing(db.superuser()) as conn, conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'mcp_readonly' "
                    "AND application_name LIKE 'pgmcp-http%' AND application_name <> 'pgmcp-http-probe'")
        return int(cur.fetchone()[0])


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_restart_under_load_gives_clean_errors_then_full_service(mode, tmp_path):
    with throwaway_cluster() as db:
        server = start_server(db.url, tmp_path, workers=2, threads=4,
                              env={"POOL_CONNECTION_TIMEOUT": "1000", "HEALTH_CHECK_TIMEOUT": "1000"})
        try:
            workers = wait_until(lambda: (lambda now: now if len(now) == 2 else None)(worker_pids(server)),
                                 what="both workers booted")
            with Load(server, clients=4) as load:
                wait_until(lambda: sum(call.ok for call in load.calls) >= 20, what="steady load")
                db.stop(mode)
                down = time.monotonic()
                time.sleep(2)
                db.start()
                up, up_wall = time.monotonic(), time.time()
                first_ok = wait_until(lambda: next((c for c in load.since(up) if c.ok), None), timeout=RECOVERY_S,
                                      interval=0.05, what="a successful call after PostgreSQL came back")
                time.sleep(1.5)
            during = [call for call in load.calls if down + 0.3 <= call.at <= up]
            after = [call for call in load.calls if call.at > first_ok.at]

            assert during, "no call was made while PostgreSQL was down"
            unclean = [(call.status, call.text[:160]) for call in during
                       if not call.ok and not _clean_unavailable(call)]
            assert not unclean, unclean
            assert all(call.status == 200 for call in load.calls), {call.status for call in load.calls}
            assert first_ok.at - up < RECOVERY_S
            assert after and all(call.ok for call in after), [call.text[:160] for call in after if not call.ok]
            assert worker_pids(server) == workers  # no worker died or was replaced

            # No caller after the restart met a dead connection (none was retried), and every connection the
            # pools hold is a live backend.
            assert _retries_after(server.log_path, up_wall) == []
            for _ in range(3):
                assert rest_call(server.port, "SELECT 1 AS one").ok
            samples = scrape(server)
            held = total(samples, "postgres_mcp_connections_idle") + total(samples, "postgres_mcp_connections_active")
            assert held == _pool_backends(db)
            assert total(samples, "postgres_mcp_pool_discarded_total") >= 1
            assert request("GET", f"{server.base}/readyz")[0] == 200
        finally:
            server.stop()


def test_the_server_starts_without_postgresql_and_recovers_when_it_appears(tmp_path):
    with throwaway_cluster() as db:
        db.stop("fast")
        server = start_server(db.url, tmp_path, workers=2, threads=2,
                              env={"POOL_CONNECTION_TIMEOUT": "1000", "HEALTH_CHECK_TIMEOUT": "1000"})
        try:
            assert request("GET", f"{server.base}/livez")[0] == 200
            status, _, body = request("GET", f"{server.base}/readyz")
            assert status == 503 and "database unavailable" in body["error"]
            call = rest_call(server.port, "SELECT 1 AS one")
            assert _clean_unavailable(call), call
            assert "retry later" in call.text

            db.start()
            started = time.monotonic()
            wait_until(lambda: request("GET", f"{server.base}/readyz")[0] == 200, timeout=RECOVERY_S,
                       what="/readyz 200 once PostgreSQL is up")
            wait_until(lambda: rest_call(server.port, "SELECT 1 AS one").ok, timeout=RECOVERY_S,
                       what="a successful query once PostgreSQL is up")
            assert time.monotonic() - started < RECOVERY_S
            assert all(rest_call(server.port, "SELECT 1 AS one").ok for _ in range(4))
        finally:
            server.stop()


def test_connections_that_died_while_idle_are_dropped_at_checkout(tmp_path):
    """A quiet restart (no call while PostgreSQL is down) leaves dead connections idle in the pools: the
    first calls afterwards must not have to find out the hard way (and be retried)."""
    with throwaway_cluster() as db:
        server = start_server(db.url, tmp_path, workers=1, threads=4, env={"MAX_CONNECTIONS": "4"})
        try:
            with ThreadPoolExecutor(max_workers=4) as pool:  # open every connection of the pool
                assert all(call.ok for call in pool.map(lambda _: rest_call(server.port, "SELECT pg_sleep(0.3)"),
                                                        range(4)))
            assert _pool_backends(db) == 4
            db.stop("fast")
            db.start()
            restarted = time.time()
            with ThreadPoolExecutor(max_workers=4) as pool:
                calls = list(pool.map(lambda _: rest_call(server.port, "SELECT pg_sleep(0.3)"), range(8)))
            assert all(call.ok for call in calls), [call.text[:160] for call in calls]
            assert _retries_after(server.log_path, restarted) == []
            samples = scrape(server)
            assert total(samples, "postgres_mcp_pool_discarded_total") >= 4
            held = total(samples, "postgres_mcp_connections_idle") + total(samples, "postgres_mcp_connections_active")
            assert held == _pool_backends(db)
        finally:
            server.stop()
