"""``make bench-statements``: what each part of a read's SQL costs PostgreSQL, one connection, no HTTP.

The same primary-key SELECT is sent as this server sends it (preamble,
cursor) and as a peer would, in a loop on one connection; the backend's CPU
time (from /proc) and the client's are divided by the number of calls. This
is how the deferred rollback (``ROLLBACK_DELAY_MS``) was sized, and what is
left of PostgreSQL's share once it is on. Prints figures; asserts nothing;
``SAVE=1`` keeps them in bench/results/<date>.md.

Environment: BENCH_CALLS (per variant and round, default 8000), BENCH_ROUNDS (default 2).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import harness
import psycopg2
import workload
from load import cpu_seconds

CALLS = int(os.environ.get("BENCH_CALLS", "8000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
SELECT = workload.SQL.replace("$1", "%(p1)s")
LIMITS = "SET LOCAL statement_timeout = 30000; "
SETTINGS = "SET LOCAL datestyle = 'ISO'; SET LOCAL intervalstyle = 'iso_8601'; SET LOCAL bytea_output = 'hex'; "
TAG = "SET LOCAL application_name = 'pgmcp-http/0123456789abcdef'; "
BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY; "
CURSOR = f"DECLARE pgmcp_rows NO SCROLL CURSOR FOR {SELECT}; FETCH FORWARD 100 FROM pgmcp_rows"
VARIANTS: dict[str, list[str]] = {
    "as sent before issue 24: preamble + cursor, then ROLLBACK (2 round trips)":
        [BEGIN + LIMITS + SETTINGS + TAG + CURSOR, "ROLLBACK"],
    "as sent now: ROLLBACK of the previous read + preamble + cursor (1 round trip)":
        ["ROLLBACK; " + BEGIN + LIMITS + SETTINGS + TAG + CURSOR],
    "now, without the cancellation tag": ["ROLLBACK; " + BEGIN + LIMITS + SETTINGS + CURSOR],
    "now, with the timeout only": ["ROLLBACK; " + BEGIN + LIMITS + CURSOR],
    "now, without the cursor": ["ROLLBACK; " + BEGIN + LIMITS + SETTINGS + TAG + SELECT],
    "the bare SELECT (what a server with no transaction sends)": [SELECT],
}


def measure(cur: psycopg2.extensions.cursor, backend: int, statements: list[str]) -> tuple[float, float]:
    """PostgreSQL's and the client's CPU per call, in microseconds."""
    before, client = cpu_seconds([backend]), time.process_time()
    for number in range(CALLS):
        for text in statements:
            cur.execute(text, {"p1": number % 1000 + 1} if "%(p1)s" in text else None)
            if cur.description is not None:
                cur.fetchall()
    return ((cpu_seconds([backend]) - before) / CALLS * 1e6, (time.process_time() - client) / CALLS * 1e6)


def main() -> None:
    with harness.database() as db:
        workload.prepare_pgbench(db)
        with psycopg2.connect(db.readonly_url) as conn:
            conn.autocommit = True
            cur = conn.cursor()
            cur.execute("SELECT pg_backend_pid()")
            backend = cur.fetchone()[0]
            cur.execute("BEGIN")  # the first ROLLBACK of each variant has a transaction to end
            assert Path(f"/proc/{backend}/stat").exists(), "PostgreSQL must run on this machine"
            seen: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
            for _ in range(ROUNDS):
                for name, statements in VARIANTS.items():
                    seen[name].append(measure(cur, backend, statements))
    lines = ["| what is sent per call | PostgreSQL CPU µs/call | client CPU µs/call |", "|---|---:|---:|"]
    for name, figures in seen.items():
        database, client = min(figures)
        lines.append(f"| {name} | {database:.0f} | {client:.0f} |")
    text = "\n".join(lines)
    print(text)
    harness.save_result("Statements per read (bench/statements.py)", harness.describe_machine(
        f"one connection, {CALLS} calls per variant, best of {ROUNDS} rounds") + "\n\n" + text)


if __name__ == "__main__":
    main()
