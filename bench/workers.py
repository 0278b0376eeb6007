"""``make bench-workers``: which worker layout serves ``tools/call query`` best on this machine.

Each layout (workers x threads of the server's gthread worker) is started in
turn and driven at concurrency 8 in the 2026-07-28 envelope, interleaved with
the naive baseline so every figure has a reference taken moments before it,
and the server's CPU time per call is printed beside it: on a machine whose
cores are shared (with PostgreSQL, wrk and whatever else runs) that figure
moves much less than calls/s.
The README's choice of defaults comes from this table. BENCH_LAYOUTS overrides
the list (``2x4,3x1``); BENCH_SECONDS the time per measurement.
"""

from __future__ import annotations

import os

import harness
import workload
from run import SECONDS, drive, naive_server

LAYOUTS = os.environ.get("BENCH_LAYOUTS", "2x4,2x2,2x1,3x1,3x2,4x1,4x2")


def main() -> None:
    layouts = [tuple(int(part) for part in item.split("x")) for item in LAYOUTS.split(",")]
    print(f"tools/call query (2026-07-28), wrk keep-alive, c=8, {SECONDS:g} s each; naive = Flask on sync x 3")
    print(f"{'layout':<14} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>8} {'errors':>6} {'naive/s':>8} {'x naive':>8} "
          f"{'CPU us/call':>11} {'naive CPU':>9}")
    with harness.database() as db:
        workload.prepare_pgbench(db)
        with naive_server(db.readonly_url) as naive_port:
            for workers, threads in layouts:
                with harness.server(db.readonly_url, workers=workers, threads=threads, env={"LOG_LEVEL": "info"},
                                    ready_path="/readyz") as srv:
                    harness.call_tool(srv.port, "query", {"sql": "SELECT 1"})
                    naive = drive(naive_port, "naive", 8, workload.naive_call())
                    ours = drive(srv.port, "ours", 8, workload.modern_call())
                print(f"{f'gthread {workers} x {threads}':<14} {ours.rate:>8,.0f} {ours.p50_ms:>7.2f} "
                      f"{ours.p99_ms:>8.1f} {ours.errors:>6} {naive.rate:>8,.0f} {ours.rate / naive.rate:>8.2f} "
                      f"{ours.cpu_us or 0:>11,.0f} {naive.cpu_us or 0:>9,.0f}", flush=True)


if __name__ == "__main__":
    main()
