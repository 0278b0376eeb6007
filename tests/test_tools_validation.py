"""The quick argument check never accepts what jsonschema refuses, and does vouch for ordinary calls.

The quick check (tools/validation.py) exists only to skip jsonschema on the
hot path; jsonschema stays the authority. These tests hold it to that: for
every schema a tool can have (each built-in one, a custom tool's, and
hand-written ones using each keyword the compiler knows), arbitrary JSON
instances from hypothesis are judged by both, and a "valid" from the quick
check must be jsonschema's verdict too.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from pgmcp_http.tools.custom.definition import Parameter
from pgmcp_http.tools.custom.schema import input_schema
from pgmcp_http.tools.registry import builtin_tools
from pgmcp_http.tools.validation import ArgumentValidator, quick_check

CUSTOM = input_schema([
    Parameter(name="region", type="string", description="", required=True, line=1, enum=("north", "south")),
    Parameter(name="code", type="string", description="", required=False, line=2, pattern="^[A-Z]{2}[0-9]+$"),
    Parameter(name="limit", type="integer", description="", required=False, line=3, minimum=1, maximum=50),
    Parameter(name="ratio", type="number", description="", required=False, line=4, minimum=0.5),
    Parameter(name="ids", type="array", description="", required=False, line=5, items="integer"),
    Parameter(name="flag", type="boolean", description="", required=False, line=6),
])
HANDWRITTEN: list[dict[str, Any]] = [
    {"type": "array", "items": {"type": "string", "minLength": 2, "maxLength": 3}, "minItems": 1, "maxItems": 3,
     "uniqueItems": True},
    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1.5},
    {"type": "object", "properties": {"a": {"type": "null"}, "b": {"enum": ["x", "y"]}}, "required": ["a"]},
    {"type": "object", "properties": {"a": True}, "additionalProperties": False},
]
SCHEMAS = [spec.input_schema for spec in builtin_tools(read_only=True)] + [CUSTOM, *HANDWRITTEN]
NAMES = [spec.name for spec in builtin_tools(read_only=True)] + ["custom"] + [
    f"handwritten{n}" for n in range(len(HANDWRITTEN))]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 60), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["north", "south", "NO1", "x", "y", "ab", "abc", "abcd", "", "json", "csv",
                                     "SELECT 1", "connections", "vacuum"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["sql", "params", "format", "region", "code", "limit", "ratio", "ids", "flag",
                                     "a", "b", "sections", "table_name", "schema_name", "extra"]), inner, max_size=5)),
    max_leaves=12)


@pytest.mark.parametrize("schema", SCHEMAS, ids=NAMES)
def test_every_tool_schema_gets_a_quick_check(schema):
    assert quick_check(schema) is not None


@pytest.mark.parametrize("schema", SCHEMAS, ids=NAMES)
@settings(max_examples=400, deadline=None)
@given(instance=json_values)
def test_the_quick_check_never_accepts_what_jsonschema_refuses(schema, instance):
    check = quick_check(schema)
    if check is not None and check(instance):
        assert Draft202012Validator(schema).is_valid(instance), instance


def test_ordinary_calls_are_vouched_for_without_jsonschema():
    query = ArgumentValidator(builtin_tools(read_only=True)[0].input_schema)
    assert query._quick is not None and query._quick({"sql": "SELECT $1", "params": [1, "a", None], "format": "csv"})
    custom = quick_check(CUSTOM)
    assert custom is not None and custom({"region": "north", "code": "NO12", "limit": 3, "ids": [1, 2]})


def test_refusals_keep_jsonschema_messages():
    query = ArgumentValidator(builtin_tools(read_only=True)[0].input_schema)
    assert query.problem({"params": []}) == "invalid arguments: 'sql' is a required property"
    assert query.problem({"sql": 1}) == "invalid argument `sql`: 1 is not of type 'string'"
    assert query.problem({"sql": "SELECT 1", "format": "xml"}).startswith("invalid argument `format`: 'xml' is not one")
    assert query.problem({"sql": "SELECT 1", "verbose": True}).startswith("invalid arguments: Additional properties")
    # A long value is described, never echoed back whole.
    assert query.problem({"sql": "SELECT 1", "params": list(range(5000))}) == \
        "invalid argument `params`: a list of 5000 items is too long (at most 1000)"
    refusal = query.problem({"sql": "SELECT 1", "k" * 300: 1})
    assert refusal is not None and "k" * 50 not in refusal and "(300 characters)" in refusal and len(refusal) < 200
    assert query.problem({"sql": "SELECT 1"}) is None
