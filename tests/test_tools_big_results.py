"""Bounded results on a 2,000,000-row table: the capped page comes back and says it was cut.

The memory side (the worker's RSS stays flat) is measured by ``bench/big_select.py``,
which prints figures instead of asserting timings.
"""

from __future__ import annotations

import pytest

from tests.helpers import scratch_database, serving
from tests.test_tools_core import ok

BIG_DB = "pgmcp_big"
ROWS = 2_000_000


BIG_SQL = f"""
CREATE TABLE big AS SELECT g AS id, md5(g::text) AS payload, timestamptz '2025-01-01' + g * interval '1 second' AS at
FROM generate_series(1, {ROWS}) g;
ANALYZE big;
GRANT SELECT ON big TO mcp_readonly;
"""


@pytest.fixture(scope="module")
def big_server(pg, tmp_path_factory):
    with scratch_database(pg, BIG_DB, BIG_SQL) as url, serving(url, tmp_path_factory.mktemp("big"), workers=1,
                                                               threads=2) as server:
        yield server


def test_select_star_returns_the_capped_page(big_server):
    data = ok(big_server, "query", {"sql": "SELECT * FROM big"})
    assert data["row_count"] == 1000 and len(data["rows"]) == 1000
    assert data["truncated"] is True and data["truncated_reason"] == "MAX_ROWS=1000"
    assert data["rows"][0]["payload"] == "c4ca4238a0b923820dcc509a6f75849b"  # md5('1')


def test_a_wide_page_is_cut_by_bytes_before_rows(big_server):
    data = ok(big_server, "query", {"sql": "SELECT id, repeat(payload, 40) AS wide FROM big"})
    assert data["truncated_reason"] == "MAX_RESULT_BYTES=1048576"
    assert 700 < data["row_count"] < 1000
