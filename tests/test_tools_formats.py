"""The query tool's text formats against the live server and the sample database."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.helpers import start_server
from tests.test_tools_core import call, failure
from tests.test_tools_values import CASES

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


# -- every type, read back with the documented rules -----------------------------------------

JSON_CASES = [
    ("'null'::jsonb", None, "jsonb"), ("'null'::json", None, "json"), ("'\"[1,2]\"'::jsonb", "[1,2]", "jsonb"),
    ("'[1,2]'::jsonb", [1, 2], "jsonb"), ("'\"\"'::jsonb", "", "jsonb"), ("'3'::jsonb", 3, "jsonb"),
    ("'\"a|b, \\\"c\\\"\"'::json", 'a|b, "c"', "json"),
    ("ARRAY['null'::jsonb, '\"x\"']", [None, "x"], "jsonb[]"),
    ("'{\"k\": null}'::jsonb", {"k": None}, "jsonb"), ("ROW(NULL, '')", '(,"")', "record"),
]
JSON_WRITTEN = {"integer", "smallint", "bigint", "boolean", "json", "jsonb"}
FLOAT_WORDS = {"NaN", "Infinity", "-Infinity"}


def decode(cell: str | None, type_name: str) -> Any:
    """A cell's value by the documented rules, given its column's type (None: NULL, already decided)."""
    if cell is None:
        return None
    if type_name in JSON_WRITTEN or type_name.endswith("[]"):
        return json.loads(cell)
    if type_name in ("real", "double precision"):
        return cell if cell in FLOAT_WORDS else json.loads(cell)
    return cell


def table_cells(text: str) -> list[list[str | None]]:
    """The table's cells: None for an empty cell, JSON-quoted strings decoded, ``\\|`` unescaped."""
    rows = []
    for line in text.splitlines()[2:]:
        cells = [cell[1:-1].replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line[1:-1])]
        rows.append([None if cell == "" else cell for cell in cells])
    return rows


def unquote_table_string(cell: str | None, type_name: str) -> str | None:
    """In a table, a string of a non-JSON column that starts with a double quote is a JSON string."""
    if cell is None or type_name in JSON_WRITTEN or type_name.endswith("[]") or not cell.startswith('"'):
        return cell
    return json.loads(cell)


@pytest.mark.parametrize("with_values", [True, False], ids=["values", "nulls"])
def test_csv_and_table_round_trip_every_type_to_the_json_result(server, with_values):
    cases = [case for case in CASES + JSON_CASES if with_values or case[2] != "record"]
    select = ", ".join(f"{expression if with_values else f'NULL::{type_name}'} AS c{i}"
                       for i, (expression, _, type_name) in enumerate(cases))
    (_,), data = texts(server, "json", f"SELECT {select}")
    types = [column["type"] for column in data["columns"]]
    expected = [data["rows"][0][f"c{i}"] for i in range(len(cases))]
    if with_values:
        assert expected == [value for _, value, _ in cases]
    else:
        assert set(map(repr, expected)) == {"None"}
    (csv_text,), _ = texts(server, "csv", f"SELECT {select}")
    header, fields = parse_csv(csv_text)
    assert header == [f"c{i}" for i in range(len(cases))]
    assert [decode(field, kind) for field, kind in zip(fields, types, strict=True)] == expected
    (table,), _ = texts(server, "table", f"SELECT {select}")
    (cells,) = table_cells(table)
    decoded = [decode(unquote_table_string(cell, kind), kind) for cell, kind in zip(cells, types, strict=True)]
    assert decoded == expected


def test_json_null_sql_null_strings_and_arrays_stay_apart_in_csv_and_table(server):
    sql = ("SELECT 'null'::jsonb AS j, NULL::jsonb AS k, '\"[1,2]\"'::jsonb AS s, '[1,2]'::jsonb AS a, "
           "'[1,2]'::text AS t")
    (csv_text,), _ = texts(server, "csv", sql)
    assert csv_text == 'j,k,s,a,t\r\nnull,,"""[1,2]""","[1,2]","[1,2]"\r\n'
    (table,), _ = texts(server, "table", sql)
    assert table.splitlines()[2] == '| null |  | "[1,2]" | [1,2] | [1,2] |'
