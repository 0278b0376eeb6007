"""TOOLS_FILE at start-up: read, check, plan when the database answers, and build the tools.

Order matters for the messages: the file's shape first (YAML, keys, types),
then each statement against the guard and its parameters, then the database.
Any error stops start-up with one line (ToolsFileError is a ConfigError).
When PostgreSQL cannot be reached the server still starts, with a warning:
its tools are then checked by nothing but the guard until the next start,
and a broken one answers calls with PostgreSQL's error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

import psycopg2.extensions as ext

from pgmcp_http.config import Settings
from pgmcp_http.tools.custom.definition import Ceilings, ToolDefinition, parse_document
from pgmcp_http.tools.custom.planning import plan_tools
from pgmcp_http.tools.custom.statement import check_statement
from pgmcp_http.tools.custom.tool import custom_spec
from pgmcp_http.tools.custom.yamlfile import read_yaml
from pgmcp_http.tools.spec import ToolContext, ToolSpec

__all__ = ["PLAN_TIMEOUT_MS", "custom_tools", "load_definitions"]

log = logging.getLogger(__name__)

PLAN_TIMEOUT_MS = 5_000
"""Statement timeout of each start-up EXPLAIN: a table locked by a migration must not hang start-up."""


def load_definitions(path: str, *, ceilings: Ceilings, reserved: Collection[str]) -> list[ToolDefinition]:
    """The tools declared in ``path``, validated as a file (no SQL checked yet)."""
    return parse_document(read_yaml(path), path=path, ceilings=ceilings, reserved=reserved)


def custom_tools(settings: Settings, *, context: ToolContext, reserved: Collection[str],
                 connect: Callable[[], ext.connection]) -> list[ToolSpec]:
    """The ToolSpecs of TOOLS_FILE (none when it is unset); raises ToolsFileError for a broken file or tool."""
    path = settings.tools_file
    if path is None:
        return []
    definitions = load_definitions(path, ceilings=Ceilings(max_rows=settings.max_rows,
                                                           timeout_ms=settings.query_timeout_ms), reserved=reserved)
    checked = [check_statement(definition, context.guard, path=path) for definition in definitions]
    report = plan_tools(checked, connect=connect, context=context, server_read_only=settings.read_only,
                        search_path=settings.allowed_schemas,
                        timeout_ms=min(PLAN_TIMEOUT_MS, settings.query_timeout_ms), path=path)
    names = ", ".join(tool.name for tool in checked)
    if report.skipped is not None:
        log.warning("TOOLS_FILE %s: custom tools %s were checked by the guard but not planned against the "
                    "database (%s); a broken one will answer calls with PostgreSQL's error; restart once the "
                    "database is up to check them", path, names, report.skipped)
    else:
        log.info("TOOLS_FILE %s: custom tools %s checked and planned", path, names)
    return [custom_spec(tool, report.columns.get(tool.name)) for tool in checked]
