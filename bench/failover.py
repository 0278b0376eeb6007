"""A failover under load: calls per second through a primary stop and a promotion, failed calls, time to recover.

A primary with the sample database and a hot standby (``pg_basebackup -R``)
run on loopback; the server is given both hosts with
``target_session_attrs=primary``, as an operator would list a Patroni pair.
Eight clients call ``query`` (a primary-key SELECT) over kept-alive
connections. At STOP_AT the primary is stopped (``pg_ctl -m immediate``, a
crash), at PROMOTE_AT the standby is promoted (a failover manager's
detection delay), and the run goes on to RUN_S. The table gives each second's
answered and failed calls; the summary, the failed calls, how long they took
to fail, and the seconds from the promotion to the first success and to the
last failure. Nothing is restarted: the same gunicorn serves throughout.

Run with ``make bench-failover`` (``SAVE=1`` appends the result to
``bench/results/<date>.md``).
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import harness

from devkit import devdb, replication

CLIENTS = 8
STOP_AT = 5.0
PROMOTE_AT = 7.0
RUN_S = 20.0


@dataclass(frozen=True)
class Call:
    started: float
    ended: float
    ok: bool


def client(port: int, origin: float, calls: list[Call], stop: threading.Event, seed: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    key = seed
    while not stop.is_set():
        key = key % 50 + 1
        body = json.dumps({"name": "query", "arguments": {"sql": "SELECT id FROM users WHERE id = $1",
                                                          "params": [key]}})
        started = time.monotonic() - origin
        try:
            conn.request("POST", "/mcp/tools/call", body=body, headers={"Content-Type": "application/json"})
            reply = conn.getresponse()
            ok = reply.status == 200 and b'"isError":false' in reply.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            ok = False
        calls.append(Call(started, time.monotonic() - origin, ok))
    conn.close()


def run() -> str:
    def sample(primary: devdb.Cluster) -> str:
        return devdb.load_sample(primary, password="failover-bench")

    with replication.replicated("pgmcp-failover-", sample, options="-c fsync=off -c max_connections=100") as (
            primary, standby, url):
        both = url.replace(f"127.0.0.1:{primary.port}", f"127.0.0.1:{primary.port},127.0.0.1:{standby.port}")
        with harness.server(both + "?target_session_attrs=primary", workers=2, threads=4,
                            env={"POOL_CONNECTION_TIMEOUT": "2000"}) as srv:
            calls: list[Call] = []
            stop = threading.Event()
            origin = time.monotonic()
            threads = [threading.Thread(target=client, args=(srv.port, origin, calls, stop, seed))
                       for seed in range(CLIENTS)]
            for thread in threads:
                thread.start()
            time.sleep(STOP_AT)
            stopped = time.monotonic() - origin
            devdb.stop_cluster(primary, mode="immediate")
            time.sleep(max(0.0, PROMOTE_AT - (time.monotonic() - origin)))
            promoted = time.monotonic() - origin  # pg_ctl promote issued; it returns once writes are accepted
            replication.promote(standby)
            time.sleep(max(0.0, RUN_S - (time.monotonic() - origin)))
            stop.set()
            for thread in threads:
                thread.join()
            alive = srv.proc.poll() is None
    return report(calls, stopped=stopped, promoted=promoted, alive=alive)


def report(calls: list[Call], *, stopped: float, promoted: float, alive: bool) -> str:
    failed = [call for call in calls if not call.ok]
    after = [call for call in calls if call.ok and call.started >= promoted]
    first_success = min((call.ended for call in after), default=float("nan"))
    last_failure = max((call.ended for call in failed), default=float("nan"))
    lines = [
        f"Failover under load ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC): {CLIENTS} clients, `query` by primary key "
        f"over REST, 2 workers x 4 threads, DATABASE_URL with both hosts and target_session_attrs=primary; "
        f"primary stopped (immediate) at {stopped:.1f} s, standby promoted at {promoted:.1f} s. "
        f"Load average {', '.join(f'{value:.2f}' for value in os.getloadavg())}.",
        "",
        "| second | answered | failed |",
        "|---:|---:|---:|",
    ]
    for second in range(int(RUN_S)):
        bucket = [call for call in calls if second <= call.ended < second + 1]
        lines.append(f"| {second} | {sum(call.ok for call in bucket)} | {sum(not call.ok for call in bucket)} |")
    fail_ms = [(call.ended - call.started) * 1000 for call in failed]
    lines += [
        "",
        f"- calls: {len(calls)}, failed: {len(failed)}, of which before the stop: "
        f"{sum(call.ended < stopped for call in failed)}",
        f"- a failed call took {statistics.median(fail_ms):.0f} ms (median), "
        f"{harness.percentile(fail_ms, 0.99):.0f} ms (p99) to fail" if fail_ms else "- no call failed",
        f"- from `pg_ctl promote` to the first success: {first_success - promoted:.2f} s; to the last failure: "
        f"{last_failure - promoted:+.2f} s; calls failed for {last_failure - stopped:.2f} s in all",
        f"- the same gunicorn served throughout, no worker restarted: {alive}",
    ]
    return "\n".join(lines)


def main() -> None:
    text = run()
    print(text)
    harness.save_result("Failover (bench/failover.py)", text)


if __name__ == "__main__":
    main()
