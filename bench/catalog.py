"""Schema tools on a big catalog: list_tables over 10,000 tables, describe_table on 300 columns.

Both tools read the catalog with a fixed number of queries whatever its size;
this prints how long that takes. Run: ``.venv/bin/python bench/catalog.py``.
"""

from __future__ import annotations

import time

import harness

TABLES = 10_000
COLUMNS = 300
CALLS = 10


def timed(port: int, name: str, arguments: dict[str, object]) -> tuple[float, float, dict[str, object]]:
    samples: list[float] = []
    data: dict[str, object] = {}
    for _ in range(CALLS):
        t0 = time.perf_counter()
        data = harness.call_tool(port, name, arguments)
        samples.append((time.perf_counter() - t0) * 1000)
    return harness.percentile(samples, 0.5), max(samples), data


def main() -> None:
    with harness.database() as db:
        started = time.monotonic()
        db.psql(f"""
            CREATE SCHEMA many;
            DO $$ BEGIN
              FOR i IN 1..{TABLES} LOOP
                EXECUTE format('CREATE TABLE many.t%s (id int PRIMARY KEY, name text, at timestamptz)', i);
                IF i % 500 = 0 THEN COMMIT; END IF;  -- one transaction would run out of lock slots
              END LOOP;
            END $$;
            SELECT format('CREATE TABLE public.wide (%s)',
                          string_agg(format('c%s int', g), ', ')) FROM generate_series(1, {COLUMNS}) g \\gexec
            GRANT USAGE ON SCHEMA many TO mcp_readonly;
            GRANT SELECT ON ALL TABLES IN SCHEMA many, public TO mcp_readonly;
            ANALYZE;""")
        print(f"catalog: {TABLES:,} tables in schema many, public.wide with {COLUMNS} columns "
              f"({time.monotonic() - started:.0f} s to create)")
        with harness.server(db.readonly_url, workers=1, threads=2) as srv:
            harness.call_tool(srv.port, "list_tables", {"limit": 1})  # warm the pool
            print(f"{'call':<52} {'entries':>8} {'p50 ms':>8} {'max ms':>8}")
            for label, name, arguments, key in (
                ("list_tables (first page, limit 1000)", "list_tables", {}, "tables"),
                ("list_tables limit=10000 (everything, one call)", "list_tables", {"limit": 10_000}, "tables"),
                ("list_tables name_pattern='t99%'", "list_tables", {"name_pattern": "t99%"}, "tables"),
                ("describe_table public.wide (300 columns)", "describe_table", {"table_name": "wide"}, "columns"),
                ("describe_table many.t5000", "describe_table", {"schema_name": "many", "table_name": "t5000"},
                 "columns"),
            ):
                p50, worst, data = timed(srv.port, name, arguments)
                entries = data.get(key)
                count = len(entries) if isinstance(entries, list) else 0
                print(f"{label:<52} {count:>8} {p50:>8.1f} {worst:>8.1f}")
            total = 0
            t0 = time.perf_counter()
            arguments: dict[str, object] = {}
            while True:
                page = harness.call_tool(srv.port, "list_tables", arguments)
                total += len(page["tables"])
                if "next_cursor" not in page:
                    break
                arguments = {"cursor": page["next_cursor"]}
            label = "list_tables, every page of 1000 in turn"
            print(f"{label:<52} {total:>8} {(time.perf_counter() - t0) * 1000:>8.1f}")


if __name__ == "__main__":
    main()
