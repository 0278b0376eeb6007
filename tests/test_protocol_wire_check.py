"""The schema check of client requests (protocol/wire_check.py): a tools/call shape that passed is not
checked again, and no request gets a different verdict than mcp_types would give it."""

from __future__ import annotations

from typing import Any

import pytest
from mcp_types import methods as wire
from pydantic import BaseModel, ValidationError

from pgmcp_http.protocol import wire_check

MODERN_META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
               "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"},
               "io.modelcontextprotocol/clientCapabilities": {}}


def verdict(check: Any, method: str, version: str, params: Any) -> str:
    try:
        check(method, version, params)
    except ValidationError as exc:
        return f"invalid: {exc.errors()[0]['loc']}"
    except (KeyError, ValueError) as exc:
        return type(exc).__name__
    return "ok"


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The methods mcp_types was asked to check, in order (its verdicts unchanged)."""
    seen: list[str] = []
    real = wire.validate_client_request

    def spy(method: str, version: str, params: Any) -> None:
        seen.append(method)
        real(method, version, params)

    monkeypatch.setattr(wire_check.wire, "validate_client_request", spy)
    monkeypatch.setattr(wire_check, "_passed", {})
    return seen


def test_every_revision_with_tools_call_is_remembered() -> None:
    revisions = {version for method, version in wire.CLIENT_REQUESTS if method == "tools/call"}
    assert revisions and revisions == wire_check.REMEMBERED_VERSIONS


def test_a_tools_call_shape_that_passed_is_not_checked_again(counted: list[str]) -> None:
    for key in range(5):
        wire_check.validate_client_request("tools/call", "2026-07-28", {
            "name": "query", "arguments": {"sql": "SELECT $1", "params": [key]}, "_meta": MODERN_META})
    assert counted == ["tools/call"]
    wire_check.validate_client_request("tools/call", "2026-07-28", {"name": "explain", "arguments": {},
                                                                    "_meta": MODERN_META})
    wire_check.validate_client_request("tools/call", "2025-06-18", {"name": "query", "arguments": {"sql": "x"}})
    wire_check.validate_client_request("tools/call", "2025-06-18", {"name": "query"})  # arguments absent
    wire_check.validate_client_request("tools/call", "2025-06-18", {"name": "query", "arguments": None})
    assert len(counted) == 5  # another tool, another revision, arguments absent or null: each checked once
    wire_check.validate_client_request("resources/list", "2025-06-18", None)
    wire_check.validate_client_request("resources/list", "2025-06-18", None)
    assert counted[5:] == ["resources/list", "resources/list"]  # only tools/call is remembered


SAME_NAME_AND_META = [
    {"name": "query", "arguments": {"sql": "SELECT 1"}, "_meta": MODERN_META},
    {"name": "query", "arguments": ["SELECT 1"], "_meta": MODERN_META},
    {"name": "query", "arguments": "SELECT 1", "_meta": MODERN_META},
    {"name": "query", "arguments": 1, "_meta": MODERN_META},
    {"name": "query", "arguments": None, "_meta": MODERN_META},
    {"name": "query", "_meta": MODERN_META},
    {"name": 7, "arguments": {"sql": "SELECT 1"}, "_meta": MODERN_META},
    {"name": "query", "arguments": {"sql": "SELECT 1"}},
    {"name": "query", "arguments": {"sql": "SELECT 1"}, "_meta": {"io.modelcontextprotocol/protocolVersion": 1}},
    {"name": "query", "arguments": {"sql": "SELECT 1"}, "_meta": MODERN_META, "requestState": 5},
    {"name": "query", "arguments": {"sql": "SELECT 1"}, "_meta": MODERN_META, "inputResponses": "no"},
    {"name": "query", "arguments": {"sql": "SELECT 1"}, "_meta": MODERN_META, "extra": {"big": 2**70}},
    ["query"],
    None,
]


@pytest.mark.parametrize("version", ["2026-07-28", "2025-11-25", "2025-06-18", "2024-11-05", "1999-01-01"])
def test_verdicts_are_mcp_types_verdicts_in_any_order(counted: list[str], version: str) -> None:
    """Valid and invalid params that share everything but ``arguments``, each asked twice, in both
    orders: the remembered check answers what mcp_types answers every time."""
    expected = [verdict(wire.validate_client_request, "tools/call", version, params)
                for params in SAME_NAME_AND_META]
    assert ("ok" in expected and any(v.startswith("invalid") for v in expected)) or version == "1999-01-01"
    for order in (SAME_NAME_AND_META, SAME_NAME_AND_META[::-1]):
        wire_check._passed.clear()
        got = [verdict(wire_check.validate_client_request, "tools/call", version, params)
               for params in order + order]
        want = [expected[SAME_NAME_AND_META.index(params)] for params in order + order]
        assert got == want


def test_a_revision_whose_arguments_are_not_any_object_is_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    class Params(BaseModel):
        name: str
        arguments: dict[str, str] | None = None  # prompts/get's kind of arguments: values must be strings

    class Request(BaseModel):
        params: Params

    monkeypatch.setattr(wire, "CLIENT_REQUESTS", {**wire.CLIENT_REQUESTS, ("tools/call", "2099-01-01"): Request})
    assert not wire_check._arguments_take_any_object("2099-01-01")
    assert wire_check._arguments_take_any_object("2026-07-28")


def test_made_up_shapes_cannot_grow_the_memory_without_bound(counted: list[str]) -> None:
    for number in range(wire_check.MAX_REMEMBERED + 10):
        wire_check.validate_client_request("tools/call", "2025-06-18", {"name": f"tool_{number}"})
    assert len(wire_check._passed) <= wire_check.MAX_REMEMBERED


def test_a_big_shape_is_checked_every_time_and_never_kept(counted: list[str]) -> None:
    """Keys the schema ignores can make params as big as the request: such a shape is not remembered."""
    junk = {"name": "query", "arguments": {}, "ignored": "x" * wire_check.MAX_SHAPE_BYTES}
    for _ in range(3):
        wire_check.validate_client_request("tools/call", "2025-06-18", junk)
    assert counted == ["tools/call"] * 3 and wire_check._passed == {}


def test_a_validator_on_the_params_makes_the_revision_unremembered(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import field_validator

    class Params(BaseModel):
        name: str
        arguments: dict[str, Any] | None = None

        @field_validator("arguments")
        @classmethod
        def small(cls, value: Any) -> Any:
            return value

    class Request(BaseModel):
        params: Params

    monkeypatch.setattr(wire, "CLIENT_REQUESTS", {**wire.CLIENT_REQUESTS, ("tools/call", "2099-01-01"): Request})
    assert not wire_check._arguments_take_any_object("2099-01-01")
