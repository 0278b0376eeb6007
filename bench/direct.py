"""The limit: the benchmark's primary-key SELECT through psycopg2 directly, and through pgbench.

No HTTP, no JSON, no MCP: N client threads, each with its own connection,
run the statement with a random key for a fixed time. Whatever the server
achieves is measured against this, from the same number of client threads
on the same machine in the same run. ``pgbench -S`` (C, no GIL) is printed
as well, as the ceiling of PostgreSQL itself here.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import threading
import time

import psycopg2
from load import LoadResult
from workload import KEYS, SQL_PSYCOPG2

__all__ = ["pgbench_select", "psycopg2_limit"]


def psycopg2_limit(dsn: str, *, concurrency: int, seconds: float) -> LoadResult:
    """``concurrency`` threads, one autocommit connection each, for ``seconds``."""
    conns = []
    for _ in range(concurrency):
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        conns.append(conn)
    samples: list[list[float]] = [[] for _ in conns]
    errors = [0] * concurrency
    start = threading.Barrier(concurrency + 1)
    stop_at: list[float] = [0.0]

    def run(index: int) -> None:
        rng = random.Random(index)
        mine = samples[index]
        with conns[index].cursor() as cur:
            start.wait()
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at[0]:
                    return
                try:
                    cur.execute(SQL_PSYCOPG2, (rng.randint(1, KEYS),))
                    cur.fetchall()
                except psycopg2.Error:
                    errors[index] += 1
                mine.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    for conn in conns:
        conn.close()
    every = sorted(sample for mine in samples for sample in mine)
    count = len(every)
    return LoadResult(label="psycopg2 direct", concurrency=concurrency, rate=count / elapsed,
                      p50_ms=every[count // 2] * 1000, p99_ms=every[min(count - 1, int(count * 0.99))] * 1000,
                      errors=sum(errors), requests=count)


def pgbench_select(dsn: str, *, concurrency: int, seconds: float) -> LoadResult:
    """``pgbench -S`` (select-only, the same statement) with ``concurrency`` clients on 2 threads."""
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        raise RuntimeError("pgbench not found")
    proc = subprocess.run([pgbench, "-n", "-S", "-c", str(concurrency), "-j", str(min(2, concurrency)),
                           "-T", str(max(1, round(seconds))), dsn],
                          capture_output=True, text=True, check=False)
    tps = re.search(r"tps = ([\d.]+)", proc.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", proc.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", proc.stdout)
    if tps is None:
        raise RuntimeError(f"pgbench failed: {proc.stderr.strip()}")
    average = float(latency.group(1)) if latency else 0.0
    return LoadResult(label="pgbench -S", concurrency=concurrency, rate=float(tps.group(1)), p50_ms=average,
                      p99_ms=float("nan"), errors=int(failed.group(1)) if failed else 0, requests=0)
