"""``make bench-profile``: where a worker's CPU goes during ``tools/call query`` at concurrency 8.

Starts its own PostgreSQL and the server with production settings (guard,
metrics, access log), drives it with wrk as ``make bench`` does, and samples
one worker with py-spy while it runs (``--gil``: only samples where Python
holds the GIL, so waiting on PostgreSQL or on a socket is not counted). Each
sample is charged to the innermost frame that belongs to a known component,
and the shares are printed. Prints figures; asserts nothing.

Environment: BENCH_SECONDS (default 10), BENCH_WORKERS / BENCH_THREADS (default: the
server's own layout).
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import harness
import workload
from run import THREADS, WORKERS, drive

RATE = 500  # samples per second
COMPONENTS = (
    ("database access (pool, transaction, rows; psycopg2 inside it)", r"pgmcp_http/db/"),
    ("gunicorn (event loop, HTTP parsing, WSGI environ, socket writes)", r"gunicorn/"),
    ("web layer and worker (checks, /mcp endpoint, access line, fast lane, slow-loris guard)",
     r"pgmcp_http/web/|pgmcp_http/serving/"),
    ("protocol (JSON-RPC, envelope, MCP wire validation and shapes)", r"pgmcp_http/protocol/|mcp_types|pydantic"),
    ("tools (arguments, query tool, result shaping)", r"pgmcp_http/tools/|jsonschema"),
    ("SQL guard", r"pgmcp_http/sqlguard/|pglast"),
    ("observability (metrics files, audit line)", r"pgmcp_http/observability/|prometheus_client"),
    ("thread pool handoffs (futures, selectors, locks)", r"concurrent/|threading\.py|selectors\.py|queue\.py"),
    ("Flask and Werkzeug", r"/flask/|/werkzeug/"),
    ("logging", r"logging/"),
)


def shares(raw: Path) -> tuple[int, list[tuple[str, float]]]:
    """Samples per component (the innermost matching frame wins) from py-spy's raw output."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        samples = int(number)
        total += samples
        label = "other (stdlib, C code outside the above)"
        for frame in reversed(stack.split(";")[1:]):
            match = next((name for name, pattern in COMPONENTS if re.search(pattern, frame)), None)
            if match is not None:
                label = match
                break
        counts[label] += samples
    return total, [(name, 100 * value / max(total, 1)) for name, value in counts.most_common()]


def main() -> None:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy not found: `make bench-profile` installs it into .venv")
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    raw = Path(tempfile.mkstemp(prefix="pgmcp-profile-", suffix=".txt")[1])
    with harness.database() as db:
        workload.prepare_pgbench(db)
        with harness.server(db.readonly_url, workers=WORKERS, threads=THREADS, env={"LOG_LEVEL": "info"},
                            ready_path="/readyz") as srv:
            harness.call_tool(srv.port, "query", {"sql": "SELECT 1"})
            worker = srv.worker_pids()[0]
            sampler = subprocess.Popen([spy, "record", "-p", str(worker), "-r", str(RATE), "-d", str(int(seconds)),
                                        "-f", "raw", "-o", str(raw), "--gil", "--nonblocking"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            result = drive(srv.port, "profiled", 8, workload.modern_call())
            sampler.wait()
    total, table = shares(raw)
    raw.unlink(missing_ok=True)
    print(f"tools/call query (2026-07-28), wrk c=8: {result.rate:,.0f} calls/s while sampled, "
          f"{result.cpu_us or 0:,.0f} us of server CPU per call; worker {worker}, {total} samples holding the GIL")
    for name, share in table:
        print(f"{share:5.1f}%  {name}")


if __name__ == "__main__":
    main()
