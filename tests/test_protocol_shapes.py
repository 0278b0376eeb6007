"""tools/call results skip the wire validation only because it would never change them.

shape_result() returns a ``tools/call`` result without passing it through
``mcp_types``' serializer (which walks every row). That is sound only while
the serializer, given any result tool_result() can build, returns it
unchanged and accepts it, in every revision. Hypothesis builds such results
(rows of every JSON type, rendered texts, errors) and checks exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp_types import methods as wire

from pgmcp_http.protocol.server import tool_result
from pgmcp_http.protocol.shapes import shape_result
from pgmcp_http.protocol.versions import HANDSHAKE_VERSIONS, MODERN_VERSIONS, at_least
from pgmcp_http.tools.toolbox import NODE_META_KEY

SERVER_INFO = {"name": "postgres-mcp-server", "title": "PostgreSQL MCP Server", "version": "1.0.0"}
VERSIONS = [*HANDSHAKE_VERSIONS, *MODERN_VERSIONS]


@dataclass
class Outcome:
    outcome: str
    data: dict[str, Any] | None = None
    error: str | None = None
    texts: list[str] | None = None
    meta: dict[str, Any] | None = None

    @property
    def is_error(self) -> bool:
        return self.error is not None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10)
rows = st.lists(st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=4), max_size=4)
outcomes = st.one_of(
    st.builds(lambda r: Outcome("ok", data={"columns": [], "rows": r, "row_count": len(r), "truncated": False}),
              rows),
    st.builds(lambda r, t: Outcome("ok", data={"rows": r}, texts=t), rows, st.lists(st.text(), min_size=1,
                                                                                    max_size=2)),
    st.builds(lambda e: Outcome("refused", error=e), st.text(min_size=1)),
    st.builds(lambda r, lag: Outcome("ok", data={"rows": r}, meta={NODE_META_KEY: {
        "role": "standby", "node": "10.0.1.8:5432", **({"lag_s": lag} if lag is not None else {})}}),
        rows, st.none() | st.floats(min_value=0, max_value=1e6)),
)


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=60, deadline=None)
@given(outcome=outcomes)
def test_the_serializer_would_return_every_tool_result_unchanged(version, outcome):
    result = tool_result(outcome, structured=at_least(version, "2025-06-18"))
    shaped = shape_result("tools/call", version, result, server_info=SERVER_INFO)
    assert wire.serialize_server_result("tools/call", version, shaped) == shaped


@pytest.mark.parametrize("version", VERSIONS)
def test_revisions_before_structured_content_never_see_it(version):
    result = tool_result(Outcome("ok", data={"rows": [{"a": 1}]}), structured=True)
    shaped = shape_result("tools/call", version, result, server_info=SERVER_INFO)
    assert ("structuredContent" in shaped) == at_least(version, "2025-06-18")
