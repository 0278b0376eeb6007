"""``make bench``: the server against the driver, a naive server and PgBouncer, in one run, as one table.

It starts its own PostgreSQL (pgbench's tables at scale 1 plus a 2,000,000-row
table), the server with its production settings (guard, metrics and an access
log line per request all on), the naive baseline (bench/naive.py on gunicorn
``sync`` x 3) and PgBouncer in transaction mode, then drives each with wrk
(bench/load.py) and prints the table. Absolute figures depend on the machine
(and on whatever else runs on it): read the ratios, which are measured in the
same run. The target comparison (the server at concurrency 8 against the
naive baseline) is measured in interleaved rounds: the median round of each side
is shown, and its ratio is the median of the rounds' own ratios, so a burst
of outside load hits both sides of a pair alike.

Environment: BENCH_SECONDS (per measurement, default 8), BENCH_ROUNDS (default 5),
BENCH_WORKERS / BENCH_THREADS (default: the server's own), BENCH_SAVE=1 to write
bench/results/<date>.md (a later run the same day is appended to it).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import direct
import harness
import load
import workload
from load import LoadResult

from devkit import devdb
from devkit import pooler as devpooler

SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
WORKERS = int(os.environ["BENCH_WORKERS"]) if os.environ.get("BENCH_WORKERS") else None
THREADS = int(os.environ["BENCH_THREADS"]) if os.environ.get("BENCH_THREADS") else None
CONCURRENCY = (1, 8, 32)
BIG_ROWS = 2_000_000


@dataclass
class Row:
    """One line of the table."""

    what: str
    result: LoadResult | None = None
    limit: float | None = None
    naive: float | None = None
    note: str = ""


@contextlib.contextmanager
def naive_server(url: str) -> Iterator[int]:
    """bench/naive.py on gunicorn sync x 3 (its own directory, so the server's gunicorn.conf.py is not read)."""
    port = devdb.free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PG", "DATABASE_URL"))}
    env["DATABASE_URL"] = url
    proc = subprocess.Popen([str(harness.GUNICORN), "-w", "3", "-k", "sync", "-b", f"127.0.0.1:{port}",
                             "--log-level", "warning", "naive:app"], cwd=Path(__file__).parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                harness.get(port, "/")
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the naive server did not start")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def drive(port: int, label: str, concurrency: int, call: tuple[str, dict[str, str]], *, path: str = "/mcp",
          marker: str = workload.MARKER, method: str = "POST") -> LoadResult:
    body, headers = call
    return load.run_wrk(f"http://127.0.0.1:{port}{path}", label=label, concurrency=concurrency, seconds=SECONDS,
                        body=body, headers=headers, keys=workload.KEYS, marker=marker, method=method,
                        pids=lambda: _processes(port))


def _processes(port: int) -> list[int]:
    """The gunicorn master listening on ``port`` and its workers (the processes whose CPU a call costs)."""
    found = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    masters = {int(part.split("=")[1].rstrip(",)")) for part in found.replace(",", " ").split()
               if part.startswith("pid=")}
    pids = set(masters)
    for master in masters:
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True)
        pids.update(int(pid) for pid in children.stdout.split())
    return sorted(pids)


def median_of(results: list[LoadResult]) -> LoadResult:
    """The round with the median rate; errors are the sum over every round."""
    ordered = sorted(results, key=lambda item: item.rate)
    middle = ordered[len(ordered) // 2]
    return replace(middle, errors=sum(item.errors for item in results),
                   requests=sum(item.requests for item in results))


def worker_rss(srv: harness.Server) -> list[float]:
    return [harness.rss_mb(pid) for pid in srv.worker_pids()]


def big_select(db: harness.BenchDatabase, srv: harness.Server) -> Row:
    """Capped SELECT * over 2,000,000 rows: p50/p99 of 20 calls, the workers' RSS before and after."""
    db.psql(f"CREATE TABLE big AS SELECT g AS id, md5(g::text) AS payload, timestamptz '2025-01-01' + "
            f"g * interval '1 second' AS at FROM generate_series(1, {BIG_ROWS}) g; ANALYZE big; "
            "GRANT SELECT ON big TO mcp_readonly;")
    harness.call_tool(srv.port, "query", {"sql": "SELECT 1"})
    before = worker_rss(srv)
    samples: list[float] = []
    rows = 0
    for _ in range(20):
        t0 = time.perf_counter()
        rows = harness.call_tool(srv.port, "query", {"sql": "SELECT * FROM big"})["row_count"]
        samples.append((time.perf_counter() - t0) * 1000)
    after = worker_rss(srv)
    growth = max(b - a for a, b in zip(before, after, strict=False))
    result = LoadResult(label="big", concurrency=1, rate=len(samples) / (sum(samples) / 1000),
                        p50_ms=harness.percentile(samples, 0.5), p99_ms=harness.percentile(samples, 0.99),
                        errors=0, requests=len(samples))
    return Row(f"capped `SELECT *` over {BIG_ROWS:,} rows ({rows} rows returned)", result,
               note=f"worker RSS {max(before):.1f} → {max(after):.1f} MiB (growth ≤ {growth:+.1f} MiB)")


def measure(db: harness.BenchDatabase) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    facts: list[str] = []
    limits: dict[int, LoadResult] = {}
    dsn = db.readonly_url
    for concurrency in CONCURRENCY:
        limits[concurrency] = direct.psycopg2_limit(dsn, concurrency=concurrency, seconds=SECONDS)
        rows.append(Row(f"limit: psycopg2 direct, {concurrency} thread(s)", limits[concurrency], limit=1.0))
    pgbench = direct.pgbench_select(db.cluster.superuser_dsn("sampledb"), concurrency=8, seconds=SECONDS)
    rows.append(Row("pgbench -S (C client, PostgreSQL's own ceiling here)", pgbench,
                    note="latency column: average, not p50"))

    env = {"LOG_LEVEL": "info"}
    with harness.server(dsn, workers=WORKERS, threads=THREADS, env=env, ready_path="/readyz") as srv, \
            naive_server(dsn) as naive_port:
        layout = f"{len(srv.worker_pids())} workers x {THREADS or 'default'} threads"
        facts.append(f"cold start (launch gunicorn → first 200 on /readyz): {srv.ready_s:.2f} s ({layout})")
        harness.call_tool(srv.port, "query", {"sql": "SELECT 1"})
        idle = worker_rss(srv)
        facts.append(f"worker RSS at idle: {', '.join(f'{value:.1f}' for value in idle)} MiB")

        naive: dict[int, LoadResult] = {}
        modern: dict[int, LoadResult] = {}
        pairs: list[tuple[LoadResult, LoadResult]] = []
        for _ in range(ROUNDS):  # the target pair, interleaved
            pairs.append((drive(naive_port, "naive", 8, workload.naive_call()),
                          drive(srv.port, "modern", 8, workload.modern_call())))
        naive[8] = median_of([pair[0] for pair in pairs])
        modern[8] = median_of([pair[1] for pair in pairs])
        # Each round's own ratio (its two measurements moments apart), then their median: a burst of
        # outside load that spans one pair moves that pair's figures, much less its ratio.
        ratios = sorted(ours.rate / theirs.rate for theirs, ours in pairs)
        target_ratio = ratios[len(ratios) // 2]
        for concurrency in (1, 32):
            naive[concurrency] = drive(naive_port, "naive", concurrency, workload.naive_call())
            modern[concurrency] = drive(srv.port, "modern", concurrency, workload.modern_call())
        session = workload.start_session(srv.port)
        handshake = {concurrency: drive(srv.port, "session", concurrency, workload.session_call(session))
                     for concurrency in CONCURRENCY}
        for concurrency in CONCURRENCY:
            rows.append(Row(f"`tools/call query`, 2026-07-28 envelope, c={concurrency}", modern[concurrency],
                            limit=modern[concurrency].rate / limits[concurrency].rate,
                            naive=target_ratio if concurrency == 8
                            else modern[concurrency].rate / naive[concurrency].rate,
                            note=f"median of {ROUNDS} rounds interleaved with the naive baseline; x naive is "
                                 f"the median of the rounds' own ratios ({ratios[0]:.2f} to {ratios[-1]:.2f})"
                            if concurrency == 8 else ""))
        for concurrency in CONCURRENCY:
            rows.append(Row(f"`tools/call query`, 2025-11-25 session, c={concurrency}", handshake[concurrency],
                            limit=handshake[concurrency].rate / limits[concurrency].rate,
                            naive=handshake[concurrency].rate / naive[concurrency].rate))
        for concurrency in CONCURRENCY:
            rows.append(Row(f"naive baseline (Flask, gunicorn sync x 3), c={concurrency}", naive[concurrency],
                            limit=naive[concurrency].rate / limits[concurrency].rate, naive=1.0))
        listing = drive(srv.port, "tools/list", 8, workload.list_call(), marker='"tools"')
        rows.append(Row("`tools/list`, 2026-07-28 envelope, c=8", listing))
        health = drive(srv.port, "health", 8, ("", {}), path="/health", marker='"healthy"', method="GET")
        rows.append(Row("`GET /health`, c=8", health, note="each check opens a fresh PostgreSQL connection"))
        rows.append(big_select(db, srv))
        after = worker_rss(srv)
        facts.append(f"worker RSS after the load: {', '.join(f'{value:.1f}' for value in after)} MiB")
        facts.append(f"target: c=8 at {target_ratio:.2f}x the naive baseline (median of {ROUNDS} interleaved "
                     f"rounds, each between {ratios[0]:.2f}x and {ratios[-1]:.2f}x; ≥ 1.2x wanted), "
                     f"p99 {modern[8].p99_ms:.1f} ms (≤ 15 ms wanted), {modern[8].errors} errors")

    rows.append(pooled(db, modern[8], limits[8]))
    return rows, facts


def pooled(db: harness.BenchDatabase, direct_modern: LoadResult, limit: LoadResult) -> Row:
    """The same server pointed at PgBouncer (transaction mode, PgBouncer's default refusal of ``options``)."""
    base = Path(tempfile.mkdtemp(prefix="pgmcp-bench-bouncer-"))
    os.chmod(base, 0o755)
    pooler = devpooler.start_pgbouncer(db.cluster, base, users={"mcp_readonly": db.readonly_password},
                                       pool_size=10)
    try:
        url = pooler.url(user="mcp_readonly", password=db.readonly_password, dbname="sampledb")
        with harness.server(url, workers=WORKERS, threads=THREADS, env={"LOG_LEVEL": "info"},
                            ready_path="/readyz") as srv:
            harness.call_tool(srv.port, "query", {"sql": "SELECT 1"})
            result = drive(srv.port, "pgbouncer", 8, workload.modern_call())
    finally:
        pooler.stop()
        shutil.rmtree(base, ignore_errors=True)
    return Row("`tools/call query` through PgBouncer 1.18 (transaction mode), c=8", result,
               limit=result.rate / limit.rate,
               note=f"{result.rate / direct_modern.rate:.2f}x the same server connected directly")


def render(rows: list[Row], facts: list[str]) -> str:
    lines = ["| what | calls/s | p50 ms | p99 ms | errors | x limit | x naive | server CPU µs/call | note |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        r = row.result
        cells = [row.what]
        if r is None:
            cells += ["", "", "", ""]
        else:
            p99 = "" if r.p99_ms != r.p99_ms else f"{r.p99_ms:.1f}"  # NaN: pgbench gives no percentile
            cells += [f"{r.rate:,.0f}", f"{r.p50_ms:.2f}", p99, str(r.errors)]
        cpu = f"{r.cpu_us:,.0f}" if r is not None and r.cpu_us is not None else ""
        cells += [f"{row.limit:.2f}" if row.limit is not None else "",
                  f"{row.naive:.2f}" if row.naive is not None else "", cpu, row.note]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {fact}" for fact in facts) + "\n"


def main() -> None:
    started = time.monotonic()
    with harness.database() as db:
        workload.prepare_pgbench(db)
        rows, facts = measure(db)
    table = render(rows, facts)
    heading = f"make bench, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"
    body = (harness.describe_machine(f"server, PostgreSQL 15 and wrk share them; {SECONDS:g} s per measurement, "
                                     "wrk keep-alive") + f"; {time.monotonic() - started:.0f} s in all.\n\n" + table)
    print(f"# {heading}\n\n{body}")
    harness.save_result(heading, body)


if __name__ == "__main__":
    main()
