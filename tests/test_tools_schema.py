"""list_tables and describe_table on a schema with every awkward object, checked against the catalogs.

The fixture database has an enum, identity and generated columns, a column
collation, partial and expression indexes, composite and cross-schema foreign
keys, a partitioned table, inheritance, a view, a materialized view,
mixed-case quoted names, comments, a trigger, a row-level security policy, a
never-analyzed table, a blocked table and a hidden schema.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from tests.helpers import modern_rpc, scratch_database, serving
from tests.test_tools_core import failure, ok

DB = "pgmcp_schema"

FIXTURE_SQL = """
CREATE SCHEMA shop; CREATE SCHEMA "Sales"; CREATE SCHEMA hidden;
COMMENT ON SCHEMA shop IS 'The shop';
CREATE TYPE shop.order_status AS ENUM ('new', 'paid', 'shipped');
CREATE TABLE shop.customers (
    id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    region text NOT NULL, code text NOT NULL,
    UNIQUE (region, code));
COMMENT ON TABLE shop.customers IS 'Who buys';
COMMENT ON COLUMN shop.customers.region IS 'Sales region';
CREATE TABLE shop.orders (
    id bigint PRIMARY KEY,
    region text, code text,
    status shop.order_status NOT NULL DEFAULT 'new',
    net numeric(10,2) NOT NULL CHECK (net >= 0),
    gross numeric(10,2) GENERATED ALWAYS AS (net * 1.25) STORED,
    note text COLLATE "C",
    placed_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (region, code) REFERENCES shop.customers (region, code));
CREATE INDEX orders_open_idx ON shop.orders (placed_at) WHERE status <> 'shipped';
CREATE INDEX orders_lower_note_idx ON shop.orders (lower(note));
CREATE TABLE "Sales"."MixedCase" ("Id" int PRIMARY KEY, "orderId" bigint REFERENCES shop.orders (id));
CREATE TABLE hidden.shadow (order_id bigint REFERENCES shop.orders (id));
CREATE TABLE shop.audit_secret (order_id bigint REFERENCES shop.orders (id), token text);
CREATE TABLE shop.uses_hidden (id int, shadow_id int);
CREATE TABLE hidden.target (id int PRIMARY KEY);
ALTER TABLE shop.uses_hidden ADD CONSTRAINT uses_hidden_fk FOREIGN KEY (shadow_id) REFERENCES hidden.target (id);
CREATE TABLE shop.events (id bigint, at date NOT NULL, payload jsonb) PARTITION BY RANGE (at);
CREATE TABLE shop.events_2025 PARTITION OF shop.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE shop.events_2026 PARTITION OF shop.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE shop.base_log (id int, msg text);
CREATE TABLE shop.child_log (extra int) INHERITS (shop.base_log);
CREATE TABLE shop.never_analyzed (id int);
CREATE TABLE shop.no_access (id int);
CREATE VIEW shop.paid_orders AS SELECT id, net FROM shop.orders WHERE status = 'paid';
CREATE MATERIALIZED VIEW shop.region_totals AS SELECT region, sum(net) AS net FROM shop.orders GROUP BY region;
CREATE FUNCTION shop.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.placed_at := now(); RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON shop.orders FOR EACH ROW EXECUTE FUNCTION shop.touch();
ALTER TABLE shop.orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY by_region ON shop.orders FOR SELECT TO mcp_readonly USING (region = current_setting('app.region', true));
INSERT INTO shop.customers (region, code) SELECT 'r' || (g % 3), 'c' || g FROM generate_series(1, 30) g;
INSERT INTO shop.orders (id, region, code, status, net, note)
    SELECT g, 'r' || (g % 3), 'c' || g, (ARRAY['new', 'paid', 'shipped'])[g % 3 + 1]::shop.order_status, g, 'n' || g
    FROM generate_series(1, 30) g;
INSERT INTO shop.events VALUES (1, '2025-03-01', '{}'), (2, '2026-03-01', '{}');
REFRESH MATERIALIZED VIEW shop.region_totals;
ANALYZE shop.customers, shop.orders, shop.events, shop.base_log, shop.child_log, shop.region_totals;
GRANT USAGE ON SCHEMA shop, "Sales", hidden TO mcp_readonly;
GRANT SELECT ON ALL TABLES IN SCHEMA shop, "Sales", hidden TO mcp_readonly;
REVOKE SELECT ON shop.no_access FROM mcp_readonly;
"""


@pytest.fixture(scope="module")
def shop(pg, tmp_path_factory):
    with scratch_database(pg, DB, FIXTURE_SQL) as url, serving(
            url, tmp_path_factory.mktemp("shop"), workers=1, threads=2,
            env={"ALLOWED_SCHEMAS": 'shop,"Sales"', "BLOCKED_TABLES": "shop.audit_secret"}) as server:
        yield server


@pytest.fixture(scope="module")
def catalog(pg, shop):
    """A superuser connection to the fixture database: the truth the tools are compared with.

    Its search path is the server's (ALLOWED_SCHEMAS), so names print alike (``order_status``).
    """
    with psycopg.connect(pg.superuser_url(DB), autocommit=True) as conn:
        conn.execute('SET search_path = shop, "Sales"')
        yield conn


def rows(conn: psycopg.Connection, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return conn.execute(sql, params).fetchall()


# -- list_tables ----------------------------------------------------------------

def test_list_tables_shows_what_is_allowed_and_folds_partitions(shop):
    data = ok(shop, "list_tables", {})
    names = {(t["schema"], t["name"]): t for t in data["tables"]}
    assert set(names) == {
        ("Sales", "MixedCase"), ("shop", "base_log"), ("shop", "child_log"), ("shop", "customers"),
        ("shop", "events"), ("shop", "never_analyzed"), ("shop", "no_access"), ("shop", "orders"),
        ("shop", "paid_orders"), ("shop", "region_totals"), ("shop", "uses_hidden"),
    }
    assert data["count"] == 11 and "next_cursor" not in data
    assert names[("shop", "events")]["kind"] == "partitioned table" and names[("shop", "events")]["partitions"] == 2
    assert names[("shop", "paid_orders")]["kind"] == "view"
    assert names[("shop", "region_totals")]["kind"] == "materialized view"
    assert names[("shop", "never_analyzed")]["row_estimate"] is None
    assert names[("shop", "never_analyzed")]["analyzed"] is False
    assert names[("shop", "orders")]["row_estimate"] == 30 and "analyzed" not in names[("shop", "orders")]
    assert names[("shop", "no_access")]["can_select"] is False and names[("shop", "orders")]["can_select"] is True
    assert names[("shop", "customers")]["comment"] == "Who buys"


def test_list_tables_sizes_owner_and_kinds_match_the_catalog(shop, catalog):
    tables = {(t["schema"], t["name"]): t for t in ok(shop, "list_tables", {})["tables"]}
    for (schema, name), entry in tables.items():
        ((owner, relkind, total),) = rows(catalog, """
            SELECT pg_get_userbyid(c.relowner), c.relkind::text,
                   CASE WHEN c.relkind = 'p' THEN (SELECT sum(pg_total_relation_size(relid))::bigint
                                                   FROM pg_partition_tree(c.oid))
                        WHEN c.relkind IN ('r', 'm') THEN pg_total_relation_size(c.oid) END
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s""",
                                          schema, name)
        assert entry["owner"] == owner
        assert entry["kind"] == {"r": "table", "v": "view", "m": "materialized view", "p": "partitioned table"}[relkind]
        assert entry.get("total_bytes") == total, (schema, name)


def test_list_tables_filters_and_pages(shop):
    assert [t["name"] for t in ok(shop, "list_tables", {"name_pattern": "ORD%"})["tables"]] == ["orders"]
    assert [t["name"] for t in ok(shop, "list_tables", {"schema_name": "Sales"})["tables"]] == ["MixedCase"]
    with_parts = {t["name"]: t for t in ok(shop, "list_tables", {"include_partitions": True})["tables"]}
    assert with_parts["events_2025"]["partition_of"] == {"schema": "shop", "name": "events"}
    everything = [t["name"] for t in ok(shop, "list_tables", {})["tables"]]
    paged: list[str] = []
    arguments: dict[str, Any] = {"limit": 3}
    for _ in range(10):
        page = ok(shop, "list_tables", arguments)
        assert page["count"] <= 3
        paged += [t["name"] for t in page["tables"]]
        if "next_cursor" not in page:
            break
        arguments = {"limit": 3, "cursor": page["next_cursor"]}
    assert paged == everything
    assert "invalid cursor" in failure(shop, "list_tables", {"cursor": "bm9wZQ"})


# -- describe_table ---------------------------------------------------------------

def test_columns_match_the_catalog(shop, catalog):
    data = ok(shop, "describe_table", {"schema_name": "shop", "table_name": "orders"})
    truth = rows(catalog, """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
        FROM pg_attribute a WHERE a.attrelid = 'shop.orders'::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum""")
    assert [(c["name"], c["type"], c["nullable"]) for c in data["columns"]] == truth
    columns = {c["name"]: c for c in data["columns"]}
    assert columns["status"]["enum_labels"] == ["new", "paid", "shipped"]
    assert columns["status"]["default"] == "'new'::order_status"
    assert columns["gross"]["generated"] == "(net * 1.25)" and columns["gross"]["default"] is None
    assert columns["note"]["collation"] == "C" and "collation" not in columns["region"]
    customers = ok(shop, "describe_table", {"schema_name": "shop", "table_name": "customers"})
    ident = {c["name"]: c for c in customers["columns"]}["id"]
    assert ident["identity"] == "always"
    assert {c["name"]: c for c in customers["columns"]}["region"]["comment"] == "Sales region"
    assert customers["unique_constraints"] == [{"name": "customers_region_code_key", "columns": ["region", "code"]}]


def test_keys_and_references_hide_what_is_hidden(shop):
    data = ok(shop, "describe_table", {"schema_name": "shop", "table_name": "orders"})
    assert data["primary_key"] == ["id"]
    (fk,) = data["foreign_keys"]
    assert fk["columns"] == ["region", "code"]
    assert fk["references"] == {"schema": "shop", "table": "customers", "columns": ["region", "code"]}
    assert [c["definition"] for c in data["check_constraints"]] == ["CHECK (net >= 0::numeric)"]
    # Referenced by a visible cross-schema table; the hidden and the blocked ones are not named.
    assert [(r["schema"], r["table"]) for r in data["referenced_by"]] == [("Sales", "MixedCase")]
    uses = ok(shop, "describe_table", {"schema_name": "shop", "table_name": "uses_hidden"})
    assert uses["foreign_keys"] == [{"name": "uses_hidden_fk", "columns": ["shadow_id"], "references": None,
                                     "note": "references a table this server does not expose"}]


def test_indexes_triggers_and_row_security(shop, catalog):
    data = ok(shop, "describe_table", {"schema_name": "shop", "table_name": "orders"})
    indexes = {i["name"]: i for i in data["indexes"]}
    assert set(indexes) == {name for (name,) in rows(catalog, """
        SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'shop.orders'::regclass""")}
    assert indexes["orders_pkey"]["primary"] is True and indexes["orders_pkey"]["unique"] is True
    assert indexes["orders_open_idx"]["predicate"] == "status <> 'shipped'::order_status"
    assert indexes["orders_lower_note_idx"]["columns"] == ["lower(note)"]
    assert indexes["orders_open_idx"]["method"] == "btree" and indexes["orders_open_idx"]["valid"] is True
    assert indexes["orders_pkey"]["bytes"] == rows(catalog, "SELECT pg_relation_size('shop.orders_pkey')")[0][0]
    (trigger,) = data["triggers"]
    assert trigger["name"] == "orders_touch" and trigger["enabled"] == "enabled"
    assert trigger["definition"] == ("CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW "
                                     "EXECUTE FUNCTION touch()")
    assert (trigger["function_schema"], trigger["function_name"]) == ("shop", "touch")
    assert data["row_security"]["enabled"] is True and data["row_security"]["forced"] is False
    (policy,) = data["row_security"]["policies"]
    assert policy == {"name": "by_region", "permissive": True, "command": "SELECT", "roles": ["mcp_readonly"],
                      "using": "region = current_setting('app.region'::text, true)", "with_check": None}


def test_statistics_match_the_catalog(shop, catalog):
    stats = ok(shop, "describe_table", {"schema_name": "shop", "table_name": "orders"})["statistics"]
    ((live, total, toast),) = rows(catalog, """
        SELECT n_live_tup, pg_total_relation_size('shop.orders'),
               pg_total_relation_size((SELECT reltoastrelid FROM pg_class WHERE oid = 'shop.orders'::regclass))
        FROM pg_stat_all_tables WHERE relid = 'shop.orders'::regclass""")
    assert stats["row_estimate"] == 30 and stats["analyzed"] is True and stats["live_tuples"] == live
    assert stats["total_bytes"] == total and stats["toast_bytes"] == toast
    assert stats["last_analyze"] is not None and stats["total_size"].endswith(("kB", "bytes"))
    assert {"seq_scans", "index_scans", "dead_tuples", "last_autovacuum", "stats_reset"} <= set(stats)


def test_partitioning_and_inheritance(shop):
    events = ok(shop, "describe_table", {"schema_name": "shop", "table_name": "events"})
    assert events["kind"] == "partitioned table"
    assert events["partitioning"]["key"] == "RANGE (at)"
    assert [p["name"] for p in events["partitioning"]["partitions"]] == ["events_2025", "events_2026"]
    assert events["partitioning"]["partitions"][0]["bound"] == "FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')"
    part = ok(shop, "describe_table", {"schema_name": "shop", "table_name": "events_2026"})
    assert part["partitioning"]["partition_of"] == {"schema": "shop", "name": "events"}
    base = ok(shop, "describe_table", {"schema_name": "shop", "table_name": "base_log"})
    assert base["inheritance"] == {"parents": [], "children": [{"schema": "shop", "name": "child_log"}], "hidden": 0}


def test_views_and_materialized_views(shop):
    view = ok(shop, "describe_table", {"schema_name": "shop", "table_name": "paid_orders"})
    assert view["kind"] == "view" and "WHERE orders.status = 'paid'" in view["definition"]
    assert view["indexes"] == [] and "statistics" not in view
    matview = ok(shop, "describe_table", {"schema_name": "shop", "table_name": "region_totals"})
    assert matview["kind"] == "materialized view" and matview["populated"] is True
    assert "GROUP BY orders.region" in matview["definition"]


def test_mixed_case_names_and_suggestions(shop):
    mixed = ok(shop, "describe_table", {"schema_name": "Sales", "table_name": "MixedCase"})
    assert [c["name"] for c in mixed["columns"]] == ["Id", "orderId"]
    assert mixed["foreign_keys"][0]["references"]["table"] == "orders"
    assert "did you mean Sales.MixedCase?" in failure(shop, "describe_table",
                                                      {"schema_name": "Sales", "table_name": "mixedcase"})
    assert "did you mean shop.orders" in failure(shop, "describe_table", {"schema_name": "shop", "table_name": "order"})


def test_hidden_and_blocked_look_missing(shop):
    blocked = failure(shop, "describe_table", {"schema_name": "shop", "table_name": "audit_secret"})
    hidden = failure(shop, "describe_table", {"schema_name": "hidden", "table_name": "shadow"})
    missing = failure(shop, "describe_table", {"schema_name": "shop", "table_name": "zz_nothing"})
    assert blocked.startswith("no table or view named shop.audit_secret")
    assert hidden.startswith("no table or view named hidden.shadow")
    for text in (blocked, hidden, missing):
        suggestions = text.partition(";")[2]
        assert suggestions and "audit_secret" not in suggestions and "hidden." not in suggestions


def test_resources_follow_the_same_filters(shop):
    listed = modern_rpc(shop.url, "resources/list").body["result"]["resources"]
    uris = {entry["uri"] for entry in listed}
    assert "postgres://table/Sales/MixedCase" in uris and "postgres://schema/shop" in uris
    assert not any("audit_secret" in uri or "/hidden" in uri or "events_2025" in uri for uri in uris)
    read = modern_rpc(shop.url, "resources/read", {"uri": "postgres://table/Sales/MixedCase"}).body["result"]
    document = json.loads(read["contents"][0]["text"])
    assert document["name"] == "MixedCase" and document["primary_key"] == ["Id"]
    for uri in ("postgres://table/shop/audit_secret", "postgres://table/hidden/shadow", "postgres://schema/hidden"):
        reply = modern_rpc(shop.url, "resources/read", {"uri": uri})
        assert reply.body["error"]["code"] == -32002 and uri in reply.body["error"]["message"]
    function = modern_rpc(shop.url, "resources/read", {"uri": "postgres://function/shop/touch"}).body["result"]
    (overload,) = json.loads(function["contents"][0]["text"])["overloads"]
    assert overload["returns"] == "trigger" and overload["language"] == "plpgsql"
    assert overload["volatility"] == "volatile" and overload["security_definer"] is False
    assert "NEW.placed_at := now()" in overload["source"]
