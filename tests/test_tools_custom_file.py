"""TOOLS_FILE validation: every mistake stops start-up with one line naming the file, the line and the tool.

The file checks need no server; the planning checks ask the session's real
PostgreSQL (a tool over an unknown table is only found there).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from devkit import devdb
from pgmcp_http.config import ConfigError, load_settings
from pgmcp_http.db import RowLimits, open_connection
from pgmcp_http.runtime import connect_options
from pgmcp_http.sqlguard import Guard, GuardPolicy
from pgmcp_http.tools import ToolContext, ToolSpec, builtin_tools
from pgmcp_http.tools.custom import Ceilings, ToolsFileError, custom_tools, load_definitions

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "tools.yaml"
URL = "postgresql://reader:pw@db.example:5432/app"
BUILTIN = [spec.name for spec in builtin_tools(read_only=True)]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tools.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def build(path: Path, database_url: str = URL, **env: str) -> list[ToolSpec]:
    """What Runtime does with TOOLS_FILE, without the rest of the server."""
    settings = load_settings({"DATABASE_URL": database_url, "TOOLS_FILE": str(path), **env})
    policy = GuardPolicy(read_only=settings.read_only, allowed_schemas=settings.allowed_schemas,
                         blocked_tables=settings.blocked_tables, max_length=settings.max_query_length)
    context = ToolContext(guard=Guard(policy), policy=policy, read_only=settings.read_only,
                          limits=RowLimits(max_rows=settings.max_rows, max_bytes=settings.max_result_bytes))
    return custom_tools(settings, context=context, reserved=BUILTIN,
                        connect=lambda: open_connection(connect_options(settings)))


def unreachable_url() -> str:
    return f"postgresql://reader:pw@127.0.0.1:{devdb.free_port()}/app"


def tool(body: str, *, name: str = "t") -> str:
    """A one-tool file; ``body`` holds the tool's keys after its name, 4-space indented."""
    return f"tools:\n  - name: {name}\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


# -- the example ----------------------------------------------------------------

def test_the_example_file_loads_without_a_database():
    definitions = load_definitions(str(EXAMPLE), ceilings=Ceilings(max_rows=1000, timeout_ms=30_000),
                                   reserved=BUILTIN)
    assert [d.name for d in definitions] == ["customer_analytics", "revenue_report"]
    report = definitions[1]
    assert [p.name for p in report.parameters] == ["start_date", "end_date", "granularity"]
    assert [p.required for p in report.parameters] == [True, True, False]
    specs = build(EXAMPLE, unreachable_url())
    schema = specs[1].input_schema
    assert schema["required"] == ["start_date", "end_date"] and schema["additionalProperties"] is False
    assert schema["properties"]["granularity"] == {"type": "string", "description": "Length of each period of the "
                                                   "report.", "enum": ["day", "week", "month"], "default": "day"}
    assert specs[0].input_schema["properties"]["customer_id"]["minimum"] == 1
    assert (specs[0].timeout_ms, specs[0].timeout_setting) == (5000, "customer_analytics.timeout")


# -- the file's shape -------------------------------------------------------------

PARAM = """parameters:
  - name: day
    type: {type}
    description: a day
sql: SELECT $1::date
"""


@pytest.mark.parametrize("text,line,fragment", [
    (tool("description: d\n" + PARAM.format(type="date")), 6,
     "tool t: parameter `day` has unknown type 'date'; use one of string, integer, number, boolean, array"),
    (tool("description: d\nsql: SELECT 1\nmax_row: 5"), 5,
     "tool t: unknown key `max_row` in a tool; did you mean `max_rows`?"),
    (tool("description: d\nsql: SELECT 1") + tool("description: again\nsql: SELECT 2").replace("tools:\n", ""), 5,
     "tool t: the name `t` is already used by the tool at line 2; tool names must be unique"),
    (tool("description: d\nsql: SELECT 1", name="query"), 2,
     "tool query: `query` is the name of a built-in tool"),
    (tool("description: d\nsql: SELECT 1", name="describe_table"), 2,
     "tool describe_table: `describe_table` is the name of a built-in tool"),
    (tool("description: d\nsql: SELECT 1", name="'two words'"), 2,
     "the tool name 'two words' is not a valid MCP tool name"),
    (tool("sql: SELECT 1"), 2, "tool t: the tool has no `description`; add one"),
    (tool("description: d"), 2, "tool t: the tool has no `sql`; add one"),
    (tool("description: d\nsql: SELECT 1\nmax_rows: 5000"), 5,
     "tool t: `max_rows` is 5000, above MAX_ROWS=1000, the server's ceiling; lower it or raise MAX_ROWS"),
    (tool("description: d\nsql: SELECT 1\ntimeout: 0"), 5, "tool t: `timeout` is 0; it must be at least 1"),
    (tool("description: d\nsql: SELECT 1\ntimeout: 60000"), 5,
     "`timeout` is 60000 (milliseconds), above QUERY_TIMEOUT=30000"),
    (tool("description: d\nsql: SELECT 1\nmax_rows: ten"), 5, "`max_rows` must be a whole number, not 'ten'"),
    (tool("description: d\nsql: SELECT 1\nsql: SELECT 2"), 5,
     "the key `sql` appears twice in the same mapping (first at line 4); keep one"),
    (tool("description: d\n  sql: SELECT 1"), 4, "not valid YAML"),
    ("tools: []\n", 1, "`tools:` must be a non-empty list of tools"),
    ("- name: t\n", 1, "the file must be a mapping with one key, `tools:`"),
    ("tool:\n  - name: t\n", 1, "unknown key `tool` in the file; did you mean `tools`?"),
    ("tools: !!python/object/apply:os.system [echo]\n", 1, "only plain YAML values are allowed"),
])
def test_file_mistakes_name_the_line_and_the_tool(tmp_path, text, line, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ToolsFileError) as caught:
        build(path, unreachable_url())
    message = str(caught.value)
    assert message.startswith(f"TOOLS_FILE {path}, line {line}"), message
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize("param,line,fragment", [
    ("type: string\ndescription: x\nenum: [yes, no]", 8, "`enum` value True of parameter `p` is not a string (quote "
     "it: YAML reads yes/no/on/off as booleans)"),
    ("type: integer\ndescription: x\nminimum: 10\nmaximum: 1", 9, "parameter `p` has minimum 10 above its maximum 1"),
    ("type: string\ndescription: x\nminimum: 1", 8, "`minimum` applies to integer or number parameters"),
    ("type: integer\ndescription: x\npattern: '^1$'", 8, "`pattern` applies to string parameters"),
    ("type: string\ndescription: x\npattern: '(['", 8, "`pattern` of parameter `p` is not a valid regular "
     "expression"),
    ("type: string\ndescription: x\nenum: [day, week]\ndefault: year", 9,
     "the default of parameter `p` is invalid: 'year' is not one of ['day', 'week']"),
    ("type: integer\ndescription: x\nminimum: 1\ndefault: 0", 9,
     "the default of parameter `p` is invalid: 0 is less than the minimum of 1"),
    ("type: string\ndescription: x\nrequired: true\ndefault: day", 9,
     "parameter `p` is required and has a default, which would never be used"),
    ("type: string\ndescription: x\nrequired: maybe", 8, "`required` of parameter `p` must be true or false"),
    ("type: array\ndescription: x", 5, "array parameter `p` has no `items`"),
    ("type: array\nitems: object\ndescription: x", 7, "array parameter `p` has items of unknown type 'object'"),
    ("type: string\ndescription: x\nitems: string", 8, "`items` applies to array parameters only"),
    ("type: string", 5, "parameter `p` has no `description`; add one"),
    ("type: string\ndescription: x\ndefualt: a", 8, "unknown key `defualt` in parameter `p`; did you mean "
     "`default`?"),
    ("type: string\ndescription: x\nfrom_claim: tenant_id\ndefault: acme", 9, "parameter `p` takes its value "
     "from the caller's `tenant_id` claim, so it cannot have `default`; remove it"),
    ("type: string\ndescription: x\nfrom_claim: tenant_id\nrequired: true", 9, "cannot have `required`"),
    ("type: string\ndescription: x\nfrom_claim: 'two words'", 8, "`from_claim` of parameter `p` must name a "
     "token claim"),
])
def test_parameter_mistakes(tmp_path, param, line, fragment):
    body = "description: d\nparameters:\n  - name: p\n" + textwrap.indent(param, "    ") + "\nsql: SELECT $1"
    path = write(tmp_path, tool(body))
    with pytest.raises(ToolsFileError) as caught:
        build(path, unreachable_url())
    message = str(caught.value)
    assert message.startswith(f"TOOLS_FILE {path}, line {line}, tool t: "), message
    assert fragment in message


def test_a_claim_bound_parameter_is_left_out_of_the_schema(tmp_path):
    body = ("description: d\nparameters:\n  - {name: tenant, type: string, description: x, from_claim: tenant_id}\n"
            "  - {name: n, type: integer, description: y}\nsql: SELECT $1::text, $2::int")
    (spec,) = [spec for spec in build(write(tmp_path, tool(body)), unreachable_url()) if spec.name == "t"]
    assert "tenant" not in spec.input_schema["properties"] and spec.input_schema["required"] == ["n"]


def test_a_duplicate_parameter_is_refused(tmp_path):
    body = ("description: d\nparameters:\n  - {name: a, type: integer, description: x}\n"
            "  - {name: a, type: integer, description: y}\nsql: SELECT $1 + $2")
    with pytest.raises(ToolsFileError, match=r"line 6, tool t: parameter `a` is declared twice \(first at line 5\)"):
        build(write(tmp_path, tool(body)), unreachable_url())


# -- the statement ----------------------------------------------------------------

@pytest.mark.parametrize("body,line,fragment", [
    ("description: d\nsql: SELEC 1", 4, 'the sql is refused: syntax error: syntax error at or near "SELEC"'),
    ("description: d\nsql: DELETE FROM orders", 4, "the sql is refused: DELETE is not allowed in read-only mode"),
    ("description: d\nsql: SELECT 1; SELECT 2", 4, "only one statement is allowed; found 2"),
    ("description: d\nsql: SELECT pg_read_file('/etc/passwd')", 4, "function pg_read_file is not allowed"),
    ("description: d\nsql: SELECT * FROM app.secrets", 4, "table app.secrets is blocked by BLOCKED_TABLES"),
    ("description: d\nparameters:\n  - {name: a, type: integer, description: x}\nsql: SELECT $1 + $2", 6,
     "the sql uses $2 but the tool declares 1 parameter ($1); $n is the n-th entry of `parameters`"),
    ("description: d\nsql: SELECT $1::int", 4, "the sql uses $1 but the tool declares no parameters"),
    ("description: d\nparameters:\n  - {name: a, type: integer, description: x}\n"
     "  - {name: b, type: integer, description: x}\nsql: SELECT $2", 5,
     "parameter `a` is $1 (its place in the list) but the sql never uses $1; use it in the sql or remove the "
     "parameter"),
    ("description: d\nparameters:\n  - {name: a, type: string, description: x}\nsql: SELECT '$1' AS text", 5,
     "parameter `a` is $1 (its place in the list) but the sql never uses $1"),
])
def test_statements_go_through_the_guard_and_placeholders_match_parameters(tmp_path, body, line, fragment):
    path = write(tmp_path, tool(body))
    with pytest.raises(ToolsFileError) as caught:
        build(path, unreachable_url(), BLOCKED_TABLES="app.secrets")
    message = str(caught.value)
    assert message.startswith(f"TOOLS_FILE {path}, line {line}, tool t: "), message
    assert fragment in message


def test_write_statements_are_allowed_only_in_write_mode(tmp_path):
    path = write(tmp_path, tool("description: d\nparameters:\n  - {name: kind, type: string, description: x}\n"
                                "sql: INSERT INTO user_events (user_id, event_type) VALUES (1, $1)"))
    with pytest.raises(ToolsFileError, match="INSERT is not allowed in read-only mode"):
        build(path, unreachable_url())
    (spec,) = build(path, unreachable_url(), READ_ONLY="false")
    assert spec.annotations["readOnlyHint"] is False and spec.annotations["destructiveHint"] is True


# -- the variable ------------------------------------------------------------------

def test_tools_file_must_exist():
    with pytest.raises(ConfigError, match="TOOLS_FILE=/nonexistent/tools.yaml: no such file"):
        load_settings({"DATABASE_URL": URL, "TOOLS_FILE": "/nonexistent/tools.yaml"})


# -- planning against the database ------------------------------------------------------

def test_planning_finds_what_only_the_database_knows(pg, tmp_path):
    cases: list[tuple[str, int, str]] = [
        ("description: d\nsql: SELECT * FROM no_such_table", 7, 'relation "no_such_table" does not exist'),
        ("description: d\nparameters:\n  - {name: a, type: integer, description: x}\nsql: |\n  SELECT nosuch\n"
         "  FROM orders WHERE id = $1", 9, 'column "nosuch" does not exist'),
        ("description: d\nsql: SELECT no_such_function(1)", 7, "function no_such_function(integer) does not exist"),
        ("description: d\nparameters:\n  - {name: a, type: integer, description: x}\n"
         "sql: SELECT * FROM get_customer_analytics($1, $1)", 9, "function get_customer_analytics("),
    ]
    for body, line, fragment in cases:
        path = write(tmp_path, tool("description: fine\nsql: SELECT 1", name="fine")
                     + tool(body).replace("tools:\n", ""))
        with pytest.raises(ToolsFileError) as caught:
            build(path, pg.readonly_url)
        message = str(caught.value)
        assert message.startswith(f"TOOLS_FILE {path}, line {line}, tool t: PostgreSQL rejects the sql: "), message
        assert fragment in message and "[SQLSTATE 42" in message


def test_planning_describes_the_result_columns(pg):
    specs = {spec.name: spec for spec in build(EXAMPLE, pg.readonly_url)}
    rows = specs["customer_analytics"].output_schema["properties"]["rows"]
    assert rows["items"]["properties"] == {
        "customer_name": {"description": "character varying"}, "total_orders": {"description": "integer"},
        "total_spent": {"description": "numeric"}, "avg_order_value": {"description": "numeric"},
        "last_order_date": {"description": "timestamp without time zone"}}
    report = specs["revenue_report"].output_schema
    assert list(report["properties"]["rows"]["items"]["properties"]) == ["period", "orders", "revenue",
                                                                         "avg_order_value"]
    assert report["description"].startswith("One row per period that had orders")
    assert report["required"] == ["columns", "rows", "row_count", "truncated"]


def test_planning_runs_nothing(pg, tmp_path):
    """EXPLAIN and the LIMIT 0 describe never call a function of the statement: a sleeping one returns at once."""
    path = write(tmp_path, tool("description: d\nsql: SELECT pg_sleep(20) AS slept, id FROM users"))
    (spec,) = build(path, pg.readonly_url)
    assert list(spec.output_schema["properties"]["rows"]["items"]["properties"]) == ["slept", "id"]


def test_an_unreachable_database_skips_planning_with_a_warning(tmp_path, caplog):
    specs = build(EXAMPLE, unreachable_url())
    assert [spec.name for spec in specs] == ["customer_analytics", "revenue_report"]
    assert specs[0].output_schema["properties"]["rows"]["items"] == {"type": "object"}  # the generic rows shape
    warning: Any = next(record for record in caplog.records if record.levelname == "WARNING")
    assert "not planned against the database (cannot connect" in warning.getMessage()
    assert "restart once the database is up" in warning.getMessage()


def test_the_manual_shows_the_example_file_as_it_is():
    example = EXAMPLE.read_text()
    assert example[example.index("tools:\n"):] in (REPO / "docs" / "custom-tools.md").read_text()


def test_claim_values_are_bound_only_when_they_fit_the_parameter():
    from pgmcp_http.sqlguard import param_key
    from pgmcp_http.tools.custom.arguments import bind_arguments
    from pgmcp_http.tools.custom.definition import Parameter
    from pgmcp_http.tools.spec import ToolError

    param = Parameter(name="tenant", type="integer", description="x", required=False, line=1, from_claim="tid",
                      minimum=1)
    assert bind_arguments([param], {}, {"tid": 7}) == {param_key(1): 7}
    assert bind_arguments([param], {"tenant": 8}, {"tid": 7}) == {param_key(1): 7}  # the caller's value is ignored
    for claims in ({"tid": "seven"}, {"tid": 0}, {"tid": [7]}):
        with pytest.raises(ToolError, match="does not fit parameter `tenant`"):
            bind_arguments([param], {}, claims)
    for claims in ({}, {"tid": None}, None):
        with pytest.raises(ToolError, match="does not carry"):
            bind_arguments([param], {"tenant": 8}, claims)
