"""BLOCKED_TABLES and ALLOWED_SCHEMAS followed through views, materialized views, partitions and inheritance.

Against a real PostgreSQL: every relation that returns a blocked table's rows
without naming it (a view over it, plain, nested, security_barrier, through a
CTE or a join; a materialized view; a partition or inheritance child of a
blocked parent; the parent of a blocked partition or child; a view in an
allowed schema over a table outside ALLOWED_SCHEMAS) is refused with the path
named, in query, analyze_query and custom tools, and hidden from list_tables,
describe_table, resources and completions. Unrelated relations pass. The path
logic itself is also tested without a server.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from pgmcp_http.sqlguard import GuardPolicy
from pgmcp_http.sqlguard.lineage import Link, trace
from tests.helpers import call_tool, modern_rpc, scratch_database, serving, start_up_failure, wait_until
from tests.test_tools_core import failure, ok

DB = "pgmcp_lineage"

SCHEMA_SQL = """
CREATE SCHEMA app; CREATE SCHEMA outside;
CREATE TABLE app.secrets (id int, secret text);
INSERT INTO app.secrets VALUES (1, 'the secret');
CREATE TABLE app.notes (id int, note text);
INSERT INTO app.notes VALUES (1, 'a note');
CREATE VIEW app.v_secret AS SELECT * FROM app.secrets;
CREATE VIEW app.v_nested AS SELECT * FROM app.v_secret;
CREATE VIEW app.v_barrier WITH (security_barrier) AS SELECT id, secret FROM app.secrets WHERE id > 0;
CREATE VIEW app.v_cte AS WITH s AS (SELECT * FROM app.secrets) SELECT id, secret FROM s;
CREATE VIEW app.v_join AS SELECT n.note, s.secret FROM app.notes n JOIN app.secrets s USING (id);
CREATE MATERIALIZED VIEW app.mv_secret AS SELECT id, secret FROM app.secrets;
CREATE VIEW app.v_notes AS SELECT * FROM app.notes;
CREATE TABLE app.parted (id int, v text) PARTITION BY RANGE (id);
CREATE TABLE app.parted_1 PARTITION OF app.parted FOR VALUES FROM (0) TO (100);
CREATE TABLE app.parted_2 PARTITION OF app.parted FOR VALUES FROM (100) TO (200)
    PARTITION BY RANGE (id);
CREATE TABLE app.parted_2a PARTITION OF app.parted_2 FOR VALUES FROM (100) TO (150);
INSERT INTO app.parted VALUES (1, 'parted one'), (120, 'parted two');
CREATE TABLE app.ledger (id int, v text) PARTITION BY RANGE (id);
CREATE TABLE app.ledger_open PARTITION OF app.ledger FOR VALUES FROM (0) TO (100);
CREATE TABLE app.ledger_closed PARTITION OF app.ledger FOR VALUES FROM (100) TO (200);
INSERT INTO app.ledger VALUES (1, 'open'), (150, 'closed');
CREATE TABLE app.animals (id int, name text);
CREATE TABLE app.dogs () INHERITS (app.animals);
INSERT INTO app.dogs VALUES (1, 'rex');
CREATE TABLE app.vehicles (id int, name text);
CREATE TABLE app.tanks () INHERITS (app.vehicles);
CREATE TABLE app.cars () INHERITS (app.vehicles);
INSERT INTO app.tanks VALUES (1, 'tank'); INSERT INTO app.cars VALUES (2, 'car');
CREATE TABLE outside.payroll (id int, salary int);
INSERT INTO outside.payroll VALUES (1, 100);
CREATE VIEW app.v_payroll AS SELECT * FROM outside.payroll;
CREATE FUNCTION app.f_secret() RETURNS TABLE (id int, secret text) LANGUAGE sql STABLE
    BEGIN ATOMIC SELECT id, secret FROM app.secrets; END;
CREATE FUNCTION app.f_notes() RETURNS TABLE (id int, note text) LANGUAGE sql STABLE
    BEGIN ATOMIC SELECT id, note FROM app.notes; END;
CREATE VIEW app.v_func AS SELECT * FROM app.f_secret();
CREATE VIEW app.v_rule AS SELECT * FROM app.notes;  -- only its INSERT rule reads the blocked table
CREATE RULE v_rule_insert AS ON INSERT TO app.v_rule DO INSTEAD
    INSERT INTO app.notes SELECT id, secret FROM app.secrets;
GRANT USAGE ON SCHEMA app, outside TO mcp_readonly;
GRANT SELECT ON ALL TABLES IN SCHEMA app, outside TO mcp_readonly;
"""

BLOCKED = "app.secrets,app.parted,app.ledger_closed,app.animals,app.tanks"
SECRET = "blocked by BLOCKED_TABLES"

# relation -> the path its refusal must name
REFUSED = {
    "app.v_secret": f"app.v_secret reads app.secrets, which is {SECRET}",
    "app.v_nested": f"app.v_nested reads app.v_secret, which reads app.secrets, which is {SECRET}",
    "app.v_barrier": f"app.v_barrier reads app.secrets, which is {SECRET}",
    "app.v_cte": f"app.v_cte reads app.secrets, which is {SECRET}",
    "app.v_join": f"app.v_join reads app.secrets, which is {SECRET}",
    "app.mv_secret": f"app.mv_secret reads app.secrets, which is {SECRET}",
    "app.parted_1": f"app.parted_1 is a partition of app.parted, which is {SECRET}",
    "app.parted_2": f"app.parted_2 is a partition of app.parted, which is {SECRET}",
    "app.parted_2a": f"app.parted_2a is a partition of app.parted_2, which is a partition of app.parted, which is "
                     f"{SECRET}",
    "app.ledger": f"app.ledger holds the rows of its partition app.ledger_closed, which is {SECRET}",
    "app.dogs": f"app.dogs is an inheritance child of app.animals, which is {SECRET}",
    "app.vehicles": f"app.vehicles holds the rows of its child table app.tanks, which is {SECRET}",
    "app.v_payroll": "app.v_payroll reads outside.payroll, which is in schema outside, which is not in "
                     "ALLOWED_SCHEMAS",
    "app.v_func": f"app.v_func reads function app.f_secret, which reads app.secrets, which is {SECRET}",
}
PASSING = ["app.notes", "app.v_notes", "app.ledger_open", "app.cars", "app.v_rule"]

TOOLS = """
tools:
  - name: notes
    description: The notes.
    sql: SELECT note FROM app.v_notes ORDER BY 1
  - name: shifting
    description: A view an operator may redefine.
    sql: SELECT * FROM app.v_shifting
"""


@pytest.fixture(scope="module")
def lineage_db(pg):
    with scratch_database(pg, DB, SCHEMA_SQL + "CREATE VIEW app.v_shifting AS SELECT note FROM app.notes;\n"
                          "GRANT SELECT ON app.v_shifting TO mcp_readonly;") as url:
        yield url


@pytest.fixture(scope="module")
def lineage_server(lineage_db, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("lineage")
    (workdir / "tools.yaml").write_text(TOOLS)
    with serving(lineage_db, workdir, workers=1, threads=2,
                 env={"BLOCKED_TABLES": BLOCKED, "ALLOWED_SCHEMAS": "app",
                      "TOOLS_FILE": str(workdir / "tools.yaml")}) as server:
        yield server


@pytest.mark.parametrize("relation", sorted(REFUSED))
def test_reads_through_a_view_partition_or_parent_are_refused_with_the_path(lineage_server, relation):
    text = failure(lineage_server, "query", {"sql": f"SELECT * FROM {relation}"})
    assert text == f"refused: table {relation} returns rows of a blocked table: {REFUSED[relation]}", text
    analyzed = failure(lineage_server, "analyze_query", {"sql": f"SELECT count(*) FROM {relation}"})
    assert REFUSED[relation] in analyzed


@pytest.mark.parametrize("relation", PASSING)
def test_unrelated_relations_still_pass(lineage_server, relation):
    assert ok(lineage_server, "query", {"sql": f"SELECT * FROM {relation}"})["row_count"] >= 1


def test_an_unqualified_name_and_a_hidden_reference_deep_in_the_statement(lineage_server):
    text = failure(lineage_server, "query", {"sql": "SELECT * FROM v_nested"})
    assert "table v_nested may resolve to app.v_nested, which returns rows of a blocked table" in text
    assert "qualify the name" in text
    inner = failure(lineage_server, "query", {"sql": "SELECT n.note FROM app.notes n WHERE EXISTS "
                                                     "(SELECT 1 FROM app.v_join j WHERE j.note = n.note)"})
    assert REFUSED["app.v_join"] in inner


def test_catalog_tools_resources_and_completions_hide_them(lineage_server):
    listed = call_tool(lineage_server, "list_tables", {"include_partitions": True, "limit": 200})
    names = {f"{t['schema']}.{t['name']}" for t in listed["structuredContent"]["tables"]}
    assert names == set(PASSING) | {"app.v_shifting"}, names
    folded = call_tool(lineage_server, "list_tables", {"limit": 200})["structuredContent"]["tables"]
    (open_ledger,) = [t for t in folded if t["name"] == "ledger_open"]  # its parent is hidden: listed on its own
    assert "partition_of" not in open_ledger and not any(t["name"] == "parted_1" for t in folded)
    for relation in REFUSED:
        schema, name = relation.split(".")
        described = call_tool(lineage_server, "describe_table", {"schema_name": schema, "table_name": name})
        assert described["isError"] and f"no table or view named {relation}" in described["content"][0]["text"]
        suggested = described["content"][0]["text"].replace(relation, "")  # close names offered instead
        assert not any(hidden in suggested for hidden in REFUSED), suggested
        read = modern_rpc(lineage_server.url, "resources/read", {"uri": f"postgres://table/{schema}/{name}"})
        assert read.body["error"]["code"] == -32002
    uris = {entry["uri"] for entry in modern_rpc(lineage_server.url, "resources/list", {}).body["result"]["resources"]}
    assert {f"postgres://table/app/{name}" for name in ("notes", "v_notes", "cars")} <= uris  # partitions folded
    assert not any(f"postgres://table/app/{relation.split('.')[1]}" in uris for relation in REFUSED)
    schema_doc = modern_rpc(lineage_server.url, "resources/read", {"uri": "postgres://schema/app"})
    assert "v_secret" not in schema_doc.body["result"]["contents"][0]["text"]
    completed = modern_rpc(lineage_server.url, "completion/complete", {
        "ref": {"type": "ref/resource", "uri": "postgres://table/{schema}/{table}"},
        "argument": {"name": "table", "value": "v_"}, "context": {"arguments": {"schema": "app"}}})
    assert completed.body["result"]["completion"]["values"] == ["v_notes", "v_rule", "v_shifting"]
    functions = modern_rpc(lineage_server.url, "completion/complete", {
        "ref": {"type": "ref/resource", "uri": "postgres://function/{schema}/{name}"},
        "argument": {"name": "name", "value": "f_"}, "context": {"arguments": {"schema": "app"}}})
    assert functions.body["result"]["completion"]["values"] == ["f_notes"]
    assert "postgres://function/app/f_notes" in uris and "postgres://function/app/f_secret" not in uris
    hidden_function = modern_rpc(lineage_server.url, "resources/read", {"uri": "postgres://function/app/f_secret"})
    assert hidden_function.body["error"]["code"] == -32002


def test_a_function_whose_body_reads_a_blocked_table_is_refused(lineage_server):
    text = failure(lineage_server, "query", {"sql": "SELECT * FROM app.f_secret()"})
    assert text == ("refused: function app.f_secret returns rows of a blocked table: function app.f_secret reads "
                    f"app.secrets, which is {SECRET}")
    assert "may resolve to app.f_secret" in failure(lineage_server, "query", {"sql": "SELECT f_secret()"})
    assert ok(lineage_server, "query", {"sql": "SELECT * FROM app.f_notes()"})["rows"] == [{"id": 1, "note": "a note"}]


def test_a_custom_tool_is_checked_at_each_call(pg, lineage_server):
    """A custom tool whose view is redefined over a blocked table after start-up is refused from then on."""
    assert ok(lineage_server, "notes", {})["rows"] == [{"note": "a note"}]
    assert ok(lineage_server, "shifting", {})["row_count"] == 1
    with psycopg.connect(pg.superuser_url(DB), autocommit=True) as conn:
        conn.execute("CREATE OR REPLACE VIEW app.v_shifting AS SELECT secret AS note FROM app.secrets")
    try:
        text = failure(lineage_server, "shifting", {})
        assert f"app.v_shifting reads app.secrets, which is {SECRET}" in text
    finally:
        with psycopg.connect(pg.superuser_url(DB), autocommit=True) as conn:
            conn.execute("DROP VIEW app.v_shifting; CREATE VIEW app.v_shifting AS SELECT note FROM app.notes; "
                         "GRANT SELECT ON app.v_shifting TO mcp_readonly")


def test_a_custom_tool_over_a_view_of_a_blocked_table_stops_start_up(lineage_db, tmp_path):
    (tmp_path / "tools.yaml").write_text("tools:\n  - name: leak\n    description: Leaks.\n"
                                         "    sql: SELECT * FROM app.v_secret\n")
    lines = start_up_failure(lineage_db, tmp_path, {"BLOCKED_TABLES": BLOCKED,
                                                    "TOOLS_FILE": str(tmp_path / "tools.yaml")})
    assert any(f"app.v_secret reads app.secrets, which is {SECRET}" in line for line in lines), lines


def test_the_remembered_lineage_catches_up_with_a_new_view(pg, lineage_db, tmp_path):
    """With LINEAGE_CHECK_CACHE, a view created while the server runs is refused once the memo expires."""
    with serving(lineage_db, tmp_path, workers=1, threads=1,
                 env={"BLOCKED_TABLES": BLOCKED, "LINEAGE_CHECK_CACHE": "300"}) as server:
        assert "returns rows of a blocked table" in failure(server, "query", {"sql": "SELECT * FROM app.v_secret"})
        with psycopg.connect(pg.superuser_url(DB), autocommit=True) as conn:
            conn.execute("CREATE VIEW app.v_late AS SELECT * FROM app.secrets; "
                         "GRANT SELECT ON app.v_late TO mcp_readonly")
        try:
            def refused() -> bool:
                result = call_tool(server, "query", {"sql": "SELECT * FROM app.v_late"})
                return result["isError"] and "app.v_late reads app.secrets" in result["content"][0]["text"]

            wait_until(refused, timeout=10)
        finally:
            with psycopg.connect(pg.superuser_url(DB), autocommit=True) as conn:
                conn.execute("DROP VIEW app.v_late")


def test_without_blocked_tables_or_allowed_schemas_nothing_is_looked_up(lineage_db, tmp_path):
    with serving(lineage_db, tmp_path, workers=1, threads=1) as server:
        assert ok(server, "query", {"sql": "SELECT * FROM app.v_secret"})["rows"] == [{"id": 1, "secret": "the secret"}]


# -- the paths, without a server -----------------------------------------------------------------

def link(reader: str, source: str, how: str, partition: bool = False) -> Link:
    return Link(reader=tuple(reader.split(".")), source=tuple(source.split(".")), how=how,  # type: ignore[arg-type]
                partition=partition)


def paths(links: list[Link], **policy: Any) -> dict[str, str]:
    lineage = trace(links, GuardPolicy(**policy))
    return {f"{schema}.{name}": path for (schema, name), path in lineage.reached.items()}


def test_a_parent_refused_for_its_blocked_partition_leaves_the_other_partitions_alone():
    links = [link("a.p", "a.p1", "holds", True), link("a.p", "a.p2", "holds", True),
             link("a.p1", "a.p", "part of", True), link("a.p2", "a.p", "part of", True),
             link("a.v", "a.p", "reads")]
    found = paths(links, blocked_tables=("a.p1",))
    assert found == {"a.p": "a.p holds the rows of its partition a.p1, which is blocked by BLOCKED_TABLES",
                     "a.v": "a.v reads a.p, which holds the rows of its partition a.p1, which is blocked by "
                            "BLOCKED_TABLES"}


def test_a_blocked_partition_that_is_also_a_parent_blocks_its_own_partitions_first():
    links = [link("a.top", "a.mid", "holds", True), link("a.mid", "a.top", "part of", True),
             link("a.mid", "a.leaf", "holds", True), link("a.leaf", "a.mid", "part of", True),
             link("a.top", "a.other", "holds", True), link("a.other", "a.top", "part of", True)]
    found = paths(links, blocked_tables=("mid",))
    assert set(found) == {"a.top", "a.leaf"}
    assert found["a.leaf"] == "a.leaf is a partition of a.mid, which is blocked by BLOCKED_TABLES"


def test_shortest_paths_and_unqualified_references():
    links = [link("a.v1", "a.s", "reads"), link("a.v2", "a.v1", "reads"), link("a.v2", "a.s", "reads"),
             link("b.v1", "b.ok", "reads")]
    lineage = trace(links, GuardPolicy(blocked_tables=("s",)))
    assert lineage.reached[("a", "v2")] == "a.v2 reads a.s, which is blocked by BLOCKED_TABLES"
    assert lineage.refusal([("b", "v1")], GuardPolicy(blocked_tables=("s",))) is None
    unqualified = lineage.refusal([(None, "v1")], GuardPolicy(blocked_tables=("s",)))
    assert unqualified is not None and unqualified.startswith("table v1 may resolve to a.v1")
    assert lineage.refusal([(None, "v1")], GuardPolicy(blocked_tables=("s",), allowed_schemas=("b",))) is None
