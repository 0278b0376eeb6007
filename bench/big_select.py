"""``SELECT *`` over 2,000,000 rows through the query tool: latency and the worker's memory.

The server keeps at most MAX_ROWS rows (and MAX_RESULT_BYTES) of a result and
reads them from a server-side cursor in batches, so the worker's RSS should
barely move however big the table is. Run: ``.venv/bin/python bench/big_select.py``.
"""

from __future__ import annotations

import time

import harness

ROWS = 2_000_000
CALLS = 20
QUERIES = {
    "SELECT * (capped at MAX_ROWS=1000)": "SELECT * FROM big",
    "SELECT * ORDER BY payload (sort first)": "SELECT * FROM big ORDER BY payload",
    "wide rows (capped by MAX_RESULT_BYTES)": "SELECT id, repeat(payload, 40) AS wide FROM big",
}


def main() -> None:
    with harness.database() as db:
        started = time.monotonic()
        db.psql("CREATE TABLE big AS SELECT g AS id, md5(g::text) AS payload, "
                f"timestamptz '2025-01-01' + g * interval '1 second' AS at FROM generate_series(1, {ROWS}) g; "
                "ANALYZE big; GRANT SELECT ON big TO mcp_readonly;")
        print(f"table big: {ROWS:,} rows loaded in {time.monotonic() - started:.1f} s")
        with harness.server(db.readonly_url, workers=1, threads=4) as srv:
            (worker,) = srv.worker_pids()
            harness.call_tool(srv.port, "query", {"sql": "SELECT 1"})  # warm: pool, type names, guard
            before = harness.rss_mb(worker)
            print(f"worker RSS at idle: {before:.1f} MiB")
            print(f"{'query':<42} {'rows':>6} {'p50 ms':>8} {'p99 ms':>8} {'RSS after MiB':>14} {'growth':>7}")
            for label, sql in QUERIES.items():
                samples: list[float] = []
                for _ in range(CALLS):
                    t0 = time.perf_counter()
                    data = harness.call_tool(srv.port, "query", {"sql": sql})
                    samples.append((time.perf_counter() - t0) * 1000)
                after = harness.rss_mb(worker)
                print(f"{label:<42} {data['row_count']:>6} {harness.percentile(samples, 0.5):>8.1f} "
                      f"{harness.percentile(samples, 0.99):>8.1f} {after:>14.1f} {after - before:>+7.1f}")


if __name__ == "__main__":
    main()
