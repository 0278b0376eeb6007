"""What following BLOCKED_TABLES through views, partitions and parents costs a ``query`` call.

Starts its own PostgreSQL with the sample database and a catalog that gives
the lineage query something to walk (VIEWS views, half of them over a blocked
table, and a table of PARTITIONS partitions, one of them blocked), then one
gunicorn worker per configuration, and sends the same ``query`` call one at a
time over a kept-alive connection, in interleaved rounds, printing each
configuration's median latency against the one with nothing blocked (where no
lineage is read at all). It also times the lineage query alone. Figures depend
on the machine: read the ratios.

Environment: BENCH_CALLS (per round and configuration, default 1500), BENCH_ROUNDS (default 3),
BENCH_VIEWS (default 2000), BENCH_PARTITIONS (default 200).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from typing import Any

import harness
import psycopg2
import psycopg2.extras

from pgmcp_http.catalog.lineage import read_links
from pgmcp_http.sqlguard import GuardPolicy
from pgmcp_http.sqlguard.lineage import trace

CALLS = int(os.environ.get("BENCH_CALLS", "1500"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
VIEWS = int(os.environ.get("BENCH_VIEWS", "2000"))
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "200"))
BLOCKED = "bench.secrets,bench.parted_7"

CONFIGURATIONS = {
    "nothing blocked (no lineage read)": {},
    "BLOCKED_TABLES, lineage remembered 2 s (default)": {"BLOCKED_TABLES": BLOCKED},
    "BLOCKED_TABLES, lineage read on every call": {"BLOCKED_TABLES": BLOCKED, "LINEAGE_CHECK_CACHE": "0"},
}


def catalog_sql() -> str:
    return f"""
        CREATE SCHEMA bench;
        CREATE TABLE bench.secrets (id int, secret text);
        CREATE TABLE bench.plain (id int, note text);
        CREATE TABLE bench.parted (id int) PARTITION BY RANGE (id);
        SELECT format('CREATE TABLE bench.parted_%s PARTITION OF bench.parted FOR VALUES FROM (%s) TO (%s)',
                      g, g * 10, g * 10 + 10) FROM generate_series(1, {PARTITIONS}) g \\gexec
        SELECT format('CREATE VIEW bench.v_%s AS SELECT * FROM bench.%s', g,
                      CASE WHEN g % 2 = 0 THEN 'secrets' ELSE 'plain' END)
        FROM generate_series(1, {VIEWS}) g \\gexec
        GRANT USAGE ON SCHEMA bench TO mcp_readonly;
        GRANT SELECT ON ALL TABLES IN SCHEMA bench TO mcp_readonly;
    """


class _Rows:
    """What read_links needs of a transaction: ``rows(sql, params)`` as dicts."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            return [dict(row) for row in cur.fetchall()]


def time_lineage_query(url: str) -> tuple[float, int, int]:
    """Median ms of the lineage query and trace() alone, the links it returns and the relations it hides."""
    policy = GuardPolicy(blocked_tables=tuple(BLOCKED.split(",")))
    samples: list[float] = []
    links: list[Any] = []
    hidden = 0
    conn = psycopg2.connect(url)
    try:
        for _ in range(20):
            started = time.perf_counter()
            links = read_links(_Rows(conn), policy)  # type: ignore[arg-type]
            hidden = len(trace(links, policy).reached)
            samples.append((time.perf_counter() - started) * 1000)
            conn.rollback()
    finally:
        conn.close()
    return statistics.median(samples), len(links), hidden


def main() -> None:
    with harness.database() as db:
        db.psql(catalog_sql())
        query_ms, links, hidden = time_lineage_query(db.readonly_url)
        medians: dict[str, list[float]] = {name: [] for name in CONFIGURATIONS}
        with contextlib.ExitStack() as stack:
            servers = {name: stack.enter_context(harness.server(db.readonly_url, workers=1, threads=4, env=env))
                       for name, env in CONFIGURATIONS.items()}
            for running in servers.values():
                harness.sequential_calls(running.port, 200)  # warm up
            for _ in range(ROUNDS):
                for name, running in servers.items():
                    medians[name].append(statistics.median(harness.sequential_calls(running.port, CALLS)))
    print(f"catalog: {VIEWS} views ({VIEWS // 2} over a blocked table), {PARTITIONS} partitions (one blocked)")
    print(f"lineage query + trace alone: {query_ms:.2f} ms median, {links} links returned, {hidden} relations hidden")
    harness.print_latencies(medians, rounds=ROUNDS, calls=CALLS)


if __name__ == "__main__":
    main()
