"""``make soak``: ten minutes of steady load; the workers' memory and the connection count must stay flat.

wrk drives ``tools/call query`` (2026-07-28 envelope, concurrency 8) against
the server with its default layout while this script samples, every
SOAK_SAMPLE seconds, each worker's RSS and the number of backends the server
holds on PostgreSQL. A leak shows as RSS that keeps climbing after the first
minute (allocator warm-up) or as connections beyond MAX_CONNECTIONS. Not run
in CI. SOAK_SECONDS (default 600) and SOAK_SAMPLE (default 30) change the
length and the sampling.
"""

from __future__ import annotations

import os
import threading
import time

import harness
import load
import workload
from load import LoadResult

from devkit import devdb

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
SAMPLE_S = float(os.environ.get("SOAK_SAMPLE", "30"))
WARMUP_S = 60


def backends(db: harness.BenchDatabase) -> int:
    return int(db.psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'mcp_readonly'",
                       dbname=devdb.SAMPLE_DB).strip())


def main() -> None:
    with harness.database() as db:
        workload.prepare_pgbench(db)
        with harness.server(db.readonly_url, workers=None, threads=None, env={"LOG_LEVEL": "info"},
                            ready_path="/readyz") as srv:
            harness.call_tool(srv.port, "query", {"sql": "SELECT 1"})
            body, headers = workload.modern_call()
            outcome: list[LoadResult] = []
            driver = threading.Thread(target=lambda: outcome.append(load.run_wrk(
                f"http://127.0.0.1:{srv.port}/mcp", label="soak", concurrency=8, seconds=SOAK_SECONDS, body=body,
                headers=headers, keys=workload.KEYS, marker=workload.MARKER)))
            started = time.monotonic()
            driver.start()
            print(f"{'t s':>5} {'worker RSS MiB':>24} {'backends':>9}", flush=True)
            samples: list[tuple[float, list[float], int]] = []
            while driver.is_alive():
                time.sleep(SAMPLE_S)
                if not driver.is_alive():
                    break
                rss = [harness.rss_mb(pid) for pid in srv.worker_pids()]
                held = backends(db)
                samples.append((time.monotonic() - started, rss, held))
                print(f"{samples[-1][0]:>5.0f} {', '.join(f'{v:.1f}' for v in rss):>24} {held:>9}", flush=True)
            driver.join()
    result = outcome[0]
    settled = [sample for sample in samples if sample[0] >= WARMUP_S] or samples
    first, last = settled[0], settled[-1]
    growth = max(b - a for a, b in zip(first[1], last[1], strict=False))
    connections = sorted({sample[2] for sample in samples})
    print(f"\n{result.requests:,} calls in {SOAK_SECONDS:g} s: {result.rate:,.0f} calls/s, p50 {result.p50_ms:.1f} ms, "
          f"p99 {result.p99_ms:.1f} ms, {result.errors} errors")
    print(f"worker RSS from t={first[0]:.0f} s to t={last[0]:.0f} s: {growth:+.1f} MiB at most; "
          f"backends held: {connections}")


if __name__ == "__main__":
    main()
