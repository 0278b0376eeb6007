"""The query tool's text formats, and the cost ceiling, against the live server and the sample database."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import psycopg
import pytest

from tests.helpers import request, start_server
from tests.test_tools_core import call, failure, ok

AWKWARD_SQL = """
SELECT * FROM (VALUES
    (1, NULL::text, 'plain'),
    (2, '', 'line one
line two'),
    (3, 'NULL', 'a | b, c'),
    (4, ' padded ', '"quoted" and ''single'''),
    (5, 'ünïcødé ✓', E'tab\\there\\\\slash'),
    (6, '"', ',')
) AS t(id, maybe, text)
ORDER BY id
"""


def parse_markdown(text: str) -> list[list[Any]]:
    """Read the table back with the documented rules: empty cell = NULL, a cell starting with a double
    quote is a JSON string, ``\\|`` is a pipe inside a value."""
    rows = []
    for line in text.splitlines()[2:]:
        cells = re.split(r"(?<!\\)\|", line[1:-1])
        rows.append([_decode_cell(cell[1:-1].replace("\\|", "|")) for cell in cells])
    return rows


def _decode_cell(cell: str) -> Any:
    if cell == "":
        return None
    if cell.startswith('"'):
        return json.loads(cell)
    return cell


def parse_csv(text: str) -> list[list[Any]]:
    """RFC 4180, keeping the difference between an empty unquoted field (NULL) and "" (empty string)."""
    rows: list[list[Any]] = []
    row: list[Any] = []
    field, quoted, in_quotes, i = "", False, False, 0
    while i < len(text):
        char = text[i]
        if in_quotes:
            if char == '"' and text[i + 1:i + 2] == '"':
                field += '"'
                i += 1
            elif char == '"':
                in_quotes = False
            else:
                field += char
        elif char == '"':
            in_quotes = quoted = True
        elif char == ",":
            row.append(field if quoted or field else None)
            field, quoted = "", False
        elif char == "\r" and text[i + 1:i + 2] == "\n":
            row.append(field if quoted or field else None)
            rows.append(row)
            row, field, quoted = [], "", False
            i += 1
        else:
            field += char
        i += 1
    return rows


def texts(server: Any, fmt: str, sql: str = AWKWARD_SQL) -> tuple[list[str], dict[str, Any]]:
    result = call(server, "query", {"sql": sql, "format": fmt})
    assert result["isError"] is False, result
    return [item["text"] for item in result["content"]], result["structuredContent"]


def test_every_format_round_trips_awkward_values(server):
    (as_json,), data = texts(server, "json")
    expected = [[row["id"], row["maybe"], row["text"]] for row in data["rows"]]
    assert expected[0][1] is None and expected[1][1] == "" and expected[2][1] == "NULL"
    assert json.loads(as_json) == data
    (as_columns,), same = texts(server, "columns")
    assert same == data  # structuredContent never changes with the format
    columns_form = json.loads(as_columns)
    assert columns_form["rows"] == expected and [c["name"] for c in columns_form["columns"]] == ["id", "maybe", "text"]
    (table,), _ = texts(server, "table")
    assert table.splitlines()[0] == "| id | maybe | text |"
    decoded = [[int(row[0]), *row[1:]] for row in parse_markdown(table)]
    assert decoded == expected
    (csv_text,), _ = texts(server, "csv")
    parsed = parse_csv(csv_text)
    assert parsed[0] == ["id", "maybe", "text"]
    assert [[int(row[0]), *row[1:]] for row in parsed[1:]] == expected


def test_truncation_is_a_separate_note_in_table_and_csv(pg, tmp_path):
    server = start_server(pg.readonly_url, tmp_path, workers=1, threads=1, env={"MAX_ROWS": "3"})
    try:
        for fmt in ("table", "csv"):
            items, data = texts(server, fmt, "SELECT id FROM users ORDER BY id")
            assert len(items) == 2 and data["truncated"] is True
            assert items[1].startswith("Only the first 3 rows are shown (MAX_ROWS=3)")
            assert "Only the first" not in items[0]
        (as_columns,), _ = texts(server, "columns", "SELECT id FROM users ORDER BY id")
        assert json.loads(as_columns)["truncated_reason"] == "MAX_ROWS=3"
    finally:
        server.stop()


def test_format_sizes_for_100_rows(server, capsys):
    sql = "SELECT id, user_id, customer_id, status, total_amount, created_at FROM orders ORDER BY id LIMIT 100"
    sizes = {fmt: len(texts(server, fmt, sql)[0][0].encode()) for fmt in ("json", "columns", "table", "csv")}
    with capsys.disabled():
        print("\nbytes of text for 100 orders rows:", ", ".join(f"{fmt} {size}" for fmt, size in sizes.items()))
    assert sizes["csv"] < sizes["columns"] < sizes["json"] and sizes["table"] < sizes["json"]


def test_an_unknown_format_is_refused_before_the_database(server):
    assert "format" in failure(server, "query", {"sql": "SELECT 1", "format": "xml"})


# -- cost ceiling ------------------------------------------------------------------------

MARKER = "pgmcp_ceiling_marker"
CROSS_JOIN = (f"SELECT /* {MARKER} */ count(*) FROM users a, orders b, order_items c, generate_series(1, 100000) g "
              "WHERE a.id > $1")


@pytest.fixture(scope="module")
def ceiling_server(pg, tmp_path_factory):
    server = start_server(pg.readonly_url, tmp_path_factory.mktemp("ceiling"), workers=1, threads=2,
                          env={"MAX_QUERY_COST": "50000", "MAX_ESTIMATED_ROWS": "100000"})
    yield server
    server.stop()


def test_a_ruinous_query_is_refused_before_it_runs(pg, ceiling_server):
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
            while not stop.is_set():
                seen.extend(row[0] for row in conn.execute(
                    "SELECT query FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
                    (f"%{MARKER}%",)))
                time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        started = time.monotonic()
        text = failure(ceiling_server, "query", {"sql": CROSS_JOIN, "params": [0]})
        assert time.monotonic() - started < 2
    finally:
        stop.set()
        watcher.join()
    assert text.startswith("refused before running: its estimated cost is ")
    assert "above MAX_QUERY_COST=50000" in text and "The costliest step is" in text
    assert "add a selective WHERE clause or a LIMIT" in text.lower() or "Add a selective WHERE" in text
    assert not any("DECLARE pgmcp_rows" in query for query in seen)  # only ever planned, never run


def test_cheap_queries_pass_and_the_row_ceiling_holds(ceiling_server):
    assert ok(ceiling_server, "query", {"sql": "SELECT name FROM users WHERE id = $1", "params": [3]})["row_count"] == 1
    rows = failure(ceiling_server, "query", {"sql": "SELECT g FROM generate_series(1, 1000000) g"})
    assert "estimated to return 1000000 rows, above MAX_ESTIMATED_ROWS=100000" in rows


def test_no_argument_lifts_the_ceiling(ceiling_server):
    status, _, body = request("POST", f"{ceiling_server.base}/mcp/tools/call",
                              {"name": "query", "arguments": {"sql": CROSS_JOIN, "params": [0], "max_cost": 1e12}},
                              {"Content-Type": "application/json"})
    assert status == 200 and body["isError"] is True and "max_cost" in body["content"][0]["text"]
