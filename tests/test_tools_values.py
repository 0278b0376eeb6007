"""Every PostgreSQL type a query returns, through the live server, compared value by value.

One case per type: the value must survive JSON (exact numerics, ISO 8601
times, NaN and Infinity distinct from NULL, bytea marked as base64) and the
column must carry the type's name, never an OID.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

from tests.test_tools_core import ok

# (SQL expression, JSON value expected, type name expected)
CASES: list[tuple[str, Any, str]] = [
    ("1::smallint", 1, "smallint"),
    ("2147483647::integer", 2147483647, "integer"),
    ("9007199254740993::bigint", 9007199254740993, "bigint"),
    ("1.5::real", 1.5, "real"),
    ("0.1::float8", 0.1, "double precision"),
    ("'NaN'::float8", "NaN", "double precision"),
    ("'-Infinity'::float8", "-Infinity", "double precision"),
    ("NULL::float8", None, "double precision"),
    ("12345678901234567890.123456789::numeric", "12345678901234567890.123456789", "numeric"),
    ("1.10::numeric(5,2)", "1.10", "numeric"),
    ("'NaN'::numeric", "NaN", "numeric"),
    ("'Infinity'::numeric", "Infinity", "numeric"),
    ("'12.34'::money", "$12.34", "money"),
    ("true", True, "boolean"),
    ("E'line 1\\nline 2 \"quoted\" | pipe, ünïcode ✓'::text", 'line 1\nline 2 "quoted" | pipe, ünïcode ✓', "text"),
    ("'ab'::char(4)", "ab  ", "character"),
    ("'abc'::varchar(10)", "abc", "character varying"),
    ("date '2025-01-02'", "2025-01-02", "date"),
    ("date 'infinity'", "infinity", "date"),
    ("date '0044-03-15 BC'", "0044-03-15 BC", "date"),
    ("time '13:45:00.5'", "13:45:00.5", "time without time zone"),
    ("timetz '13:45:00+02'", "13:45:00+02:00", "time with time zone"),
    ("timestamp '2025-01-02 03:04:05.123456'", "2025-01-02T03:04:05.123456", "timestamp without time zone"),
    ("timestamp '-infinity'", "-infinity", "timestamp without time zone"),
    ("timestamptz '2025-01-02 03:04:05+00'", "2025-01-02T03:04:05+00:00", "timestamp with time zone"),
    ("timestamptz 'infinity'", "infinity", "timestamp with time zone"),
    ("interval '1 year 2 months 3 days 04:05:06.5'", "P1Y2M3DT4H5M6.5S", "interval"),
    ("interval '-1 day'", "P-1D", "interval"),
    ("'6f1a0b9c-0000-4000-8000-000000000001'::uuid", "6f1a0b9c-0000-4000-8000-000000000001", "uuid"),
    ("'192.168.0.1/24'::inet", "192.168.0.1/24", "inet"),
    ("'10.0.0.0/8'::cidr", "10.0.0.0/8", "cidr"),
    ("'08:00:2b:01:02:03'::macaddr", "08:00:2b:01:02:03", "macaddr"),
    ("'\\x00ff10'::bytea", "base64:AP8Q", "bytea"),
    ("''::bytea", "base64:", "bytea"),
    ("'{\"b\": 1, \"a\": [true, null]}'::json", {"b": 1, "a": [True, None]}, "json"),
    ("'{\"n\": 1.5, \"s\": \"x\"}'::jsonb", {"n": 1.5, "s": "x"}, "jsonb"),
    ("'\"just a string\"'::jsonb", "just a string", "jsonb"),
    ("'1e400'::json", float("inf"), "json"),  # sent as 1e400, exactly as written (Python reads it as inf)
    ("'1e400'::jsonb", 10**400, "jsonb"),  # jsonb writes it as 401 digits: sent as those digits
    (r"""'"\ud800x"'::json""", "\ud800x", "json"),  # a lone surrogate escape json accepts: sent as written
    ("ARRAY['a\"b', NULL, 'c,d', '']", ['a"b', None, "c,d", ""], "text[]"),
    ("ARRAY[[1, 2], [3, 4]]", [[1, 2], [3, 4]], "integer[]"),
    ("'{}'::int[]", [], "integer[]"),
    ("ARRAY[1.5, 'NaN']::numeric[]", ["1.5", "NaN"], "numeric[]"),
    ("ARRAY[timestamptz '2025-01-02 00:00+00']", ["2025-01-02T00:00:00+00:00"], "timestamp with time zone[]"),
    ("ARRAY['{\"a\": 1}'::jsonb]", [{"a": 1}], "jsonb[]"),
    ("ARRAY['\\x01'::bytea]", ["base64:AQ=="], "bytea[]"),
    ("'[1,5)'::int4range", "[1,5)", "int4range"),
    ("'[1.5,2]'::numrange", "[1.5,2]", "numrange"),
    ("'[2025-01-01,2025-02-01)'::daterange", "[2025-01-01,2025-02-01)", "daterange"),
    ("'[2025-01-01 10:00,)'::tsrange", "[\"2025-01-01 10:00:00\",)", "tsrange"),
    ("int8range(1, 10)", "[1,10)", "int8range"),
    ("ARRAY[int4range(1, 2)]", ["[1,2)"], "int4range[]"),
    ("'{[1,3), [5,7)}'::int4multirange", "{[1,3),[5,7)}", "int4multirange"),
    ("'a fat cat'::tsvector", "'a' 'cat' 'fat'", "tsvector"),
    ("'<a>x</a>'::xml", "<a>x</a>", "xml"),
    ("point(1, 2)", "(1,2)", "point"),
    ("B'101'", "101", "bit"),
    ("'users'::regclass", "users", "regclass"),
    ("ROW(1, 'a b')", "(1,\"a b\")", "record"),
]


@pytest.mark.parametrize(("expression", "expected", "type_name"), CASES, ids=[case[0] for case in CASES])
def test_value_and_type_survive_json(server, expression, expected, type_name):
    data = ok(server, "query", {"sql": f"SELECT {expression} AS v"})
    assert data["columns"] == [{"name": "v", "type": type_name}]
    assert data["rows"] == [{"v": expected}]
    assert type(data["rows"][0]["v"]) is type(expected)  # 1 is not "1", True is not 1


def test_nulls_of_every_type_are_json_null(server):
    types = sorted({type_name for _, _, type_name in CASES} - {"record"})
    columns = ", ".join(f"NULL::{type_name} AS c{i}" for i, type_name in enumerate(types))
    data = ok(server, "query", {"sql": f"SELECT {columns}"})
    assert len(data["columns"]) == len(types) > 30
    assert set(data["rows"][0].values()) == {None}


def test_json_numbers_no_double_holds_are_sent_as_postgresql_wrote_them(server):
    body = json.dumps({"name": "query", "arguments": {
        "sql": "SELECT '1e400'::json AS a, '[1e400, 2]'::jsonb AS b, ('1' || repeat('0', 5000))::jsonb AS c, "
               "(repeat('[', 1500) || repeat(']', 1500))::json AS d"}})
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", "/mcp/tools/call", body=body, headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        raw = reply.read()
    finally:
        conn.close()
    assert reply.status == 200
    # Not null, not inf, and not Python's limit of 4,300 digits for an int: what PostgreSQL wrote.
    # Nesting deeper than orjson's 1,024 levels is sent as written too.
    assert (b'"rows":[{"a":1e400,"b":[1' + b"0" * 400 + b', 2],"c":1' + b"0" * 5000 + b',"d":' + b"[" * 1500
            + b"]" * 1500 + b"}]") in raw
