"""completion/complete and prompts over the wire: prefixes, case, limits, hidden objects, bad arguments."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from tests.helpers import MODERN, initialize, modern_rpc, scratch_database, sdk_client, serving, session_rpc

DB = "pgmcp_completions"
TABLE_REF = {"type": "ref/resource", "uri": "postgres://table/{schema}/{table}"}


CATALOG_SQL = """
CREATE SCHEMA shop; CREATE SCHEMA hidden; CREATE SCHEMA "Sales";
DO $$ BEGIN FOR i IN 1..150 LOOP
    EXECUTE format('CREATE TABLE shop.%I (id int)', 'Item_' || lpad(i::text, 3, '0'));
END LOOP; END $$;
CREATE TABLE shop.items_secret (id int); CREATE TABLE shop.orders (id int);
CREATE TABLE hidden.items_hidden (id int); CREATE TABLE "Sales"."Invoices" (id int);
CREATE FUNCTION shop.item_total(int) RETURNS int LANGUAGE sql AS 'SELECT $1';
CREATE FUNCTION shop.item_total(bigint) RETURNS bigint LANGUAGE sql AS 'SELECT $1';
GRANT USAGE ON SCHEMA shop, hidden, "Sales" TO mcp_readonly;
"""


@pytest.fixture(scope="module")
def catalog_server(pg, tmp_path_factory):
    """150 tables whose names start with "Item" (mixed case), a blocked one, a hidden schema."""
    with scratch_database(pg, DB, CATALOG_SQL) as url, serving(
            url, tmp_path_factory.mktemp("completions"), workers=2, threads=2,
            env={"ALLOWED_SCHEMAS": 'shop,"Sales"', "BLOCKED_TABLES": "shop.items_secret"}) as server:
        yield server


def complete(server: Any, ref: dict[str, Any], name: str, value: str,
             context: dict[str, str] | None = None) -> Any:
    params: dict[str, Any] = {"ref": ref, "argument": {"name": name, "value": value}}
    if context is not None:
        params["context"] = {"arguments": context}
    return modern_rpc(server.url, "completion/complete", params)


def values(reply: Any) -> dict[str, Any]:
    assert reply.status == 200, reply.body
    return reply.body["result"]["completion"]


def test_table_names_by_prefix_whatever_the_case(catalog_server):
    found = values(complete(catalog_server, TABLE_REF, "table", "item_01", {"schema": "shop"}))
    assert found == {"values": [f"Item_{n:03d}" for n in range(10, 20)], "total": 10, "hasMore": False}
    assert values(complete(catalog_server, TABLE_REF, "table", "ORD", {"schema": "shop"}))["values"] == ["orders"]


def test_at_most_100_values_with_total_and_has_more(catalog_server):
    found = values(complete(catalog_server, TABLE_REF, "table", "i", {"schema": "shop"}))
    assert len(found["values"]) == 100 and found["total"] == 150 and found["hasMore"] is True
    assert found["values"][:2] == ["Item_001", "Item_002"]


def test_hidden_and_blocked_are_never_suggested(catalog_server):
    found = values(complete(catalog_server, TABLE_REF, "table", "items"))
    assert found["values"] == [] and found["total"] == 0  # items_secret is blocked, items_hidden is hidden
    assert values(complete(catalog_server, TABLE_REF, "table", "", {"schema": "hidden"}))["values"] == []
    schemas = values(complete(catalog_server, TABLE_REF, "schema", ""))["values"]
    assert schemas == ["Sales", "shop"]
    assert values(complete(catalog_server, TABLE_REF, "schema", "s"))["values"] == ["Sales", "shop"]


def test_functions_and_prompt_arguments(catalog_server):
    function_ref = {"type": "ref/resource", "uri": "postgres://function/{schema}/{name}"}
    assert values(complete(catalog_server, function_ref, "name", "ITEM", {"schema": "shop"}))["values"] == [
        "item_total"]
    prompt_ref = {"type": "ref/prompt", "name": "explore_table"}
    assert values(complete(catalog_server, prompt_ref, "table_name", "inv"))["values"] == ["Invoices"]
    assert values(complete(catalog_server, prompt_ref, "schema", "sa"))["values"] == ["Sales"]
    sql_ref = {"type": "ref/prompt", "name": "explain_slow_query"}
    assert values(complete(catalog_server, sql_ref, "sql", "SEL")) == {"values": [], "total": 0, "hasMore": False}


@pytest.mark.parametrize(("ref", "argument", "message"), [
    ({"type": "ref/resource", "uri": "postgres://nope/{x}"}, "x", "no resource template postgres://nope/{x}"),
    (TABLE_REF, "column", "has no argument 'column'"),
    ({"type": "ref/prompt", "name": "nope"}, "schema", "no prompt named 'nope'"),
    ({"type": "ref/prompt", "name": "explore_table"}, "color", "has no argument 'color'"),
])
def test_unknown_references_are_invalid_params(catalog_server, ref, argument, message):
    reply = complete(catalog_server, ref, argument, "")
    assert reply.status == 400 and reply.body["error"]["code"] == -32602
    assert message in reply.body["error"]["message"]


def test_fast_on_a_large_catalog(catalog_server):
    started = time.monotonic()
    for prefix in ("i", "item_1", "o", "x"):
        values(complete(catalog_server, TABLE_REF, "table", prefix))
    assert time.monotonic() - started < 2.0  # four calls; each is one indexed catalog query


def test_completions_in_every_handshake_revision(catalog_server):
    for version in ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"):
        session, negotiated = initialize(catalog_server.url, version)
        reply = session_rpc(catalog_server.url, session, negotiated, "completion/complete",
                            {"ref": TABLE_REF, "argument": {"name": "table", "value": "ord"},
                             "context": {"arguments": {"schema": "shop"}}})
        assert reply.status == 200 and reply.body["result"]["completion"]["values"] == ["orders"], version


# -- prompts ------------------------------------------------------------------------

def test_prompts_list_and_get(server):
    listed = modern_rpc(server.url, "prompts/list", {}).body["result"]["prompts"]
    assert {p["name"] for p in listed} == {"explain_slow_query", "describe_database", "find_missing_indexes",
                                           "check_database_health", "explore_table"}
    explain = next(p for p in listed if p["name"] == "explain_slow_query")
    assert explain["arguments"] == [{"name": "sql", "description": "The slow SQL statement.", "required": True}]
    got = modern_rpc(server.url, "prompts/get", {"name": "explain_slow_query",
                                                 "arguments": {"sql": "SELECT * FROM orders WHERE status = 'x'"}})
    (message,) = got.body["result"]["messages"]
    assert message["role"] == "user" and "analyze_query" in message["content"]["text"]
    assert "SELECT * FROM orders WHERE status = 'x'" in message["content"]["text"]
    health = modern_rpc(server.url, "prompts/get", {"name": "check_database_health"}).body["result"]
    assert "database_health" in health["messages"][0]["content"]["text"]
    schema = modern_rpc(server.url, "prompts/get", {"name": "describe_database", "arguments": {"schema": "app"}})
    assert '{"schema_name": "app"}' in schema.body["result"]["messages"][0]["content"]["text"]


@pytest.mark.parametrize(("params", "message"), [
    ({"name": "explain_slow_query"}, "needs the argument 'sql'"),
    ({"name": "explain_slow_query", "arguments": {"sql": "  "}}, "needs the argument 'sql'"),
    ({"name": "explain_slow_query", "arguments": {"sql": "SELECT 1", "limit": "3"}}, "has no argument limit"),
    ({"name": "nope"}, "no prompt named 'nope'"),
])
def test_bad_prompt_requests_are_invalid_params(server, params, message):
    reply = modern_rpc(server.url, "prompts/get", params)
    assert reply.status == 400 and reply.body["error"]["code"] == -32602 and message in reply.body["error"]["message"]


def test_prompts_through_the_official_sdk_client(server):
    async def main() -> tuple[list[str], str]:
        async with sdk_client(server.url, MODERN) as client:
            names = [prompt.name for prompt in (await client.list_prompts()).prompts]
            result = await client.get_prompt("explore_table", {"table_name": "orders"})
            return names, result.messages[0].content.text

    names, text = anyio.run(main)
    assert "explore_table" in names and '"table_name": "orders"' in text
