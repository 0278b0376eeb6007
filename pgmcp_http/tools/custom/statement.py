"""A tool's SQL at start-up: the same guard as ``query``, and ``$n`` placeholders matched to parameters.

``$n`` is the n-th entry of the tool's ``parameters`` list, exactly as ``$n``
is the n-th value of ``query``'s ``params``: one placeholder form for the
whole server, bound by the same code. Every declared parameter must be used
and no placeholder may point past the list, so a parameter added or removed
on one side only is caught when the server starts, not when an agent calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from pglast import parser
from pglast.parser import ParseError

from pgmcp_http.sqlguard import Approved, Guard, Refusal
from pgmcp_http.tools.custom.definition import ToolDefinition
from pgmcp_http.tools.custom.errors import ToolsFileError

__all__ = ["CheckedTool", "check_statement"]


@dataclass(frozen=True)
class CheckedTool:
    """A tool whose SQL the guard approved and whose placeholders match its parameters."""

    definition: ToolDefinition
    approved: Approved

    @property
    def name(self) -> str:
        return self.definition.name


def placeholders(statement: str) -> set[int]:
    """The ``$n`` numbers PostgreSQL's scanner finds (never inside literals, comments or dollar quotes)."""
    try:
        tokens = parser.scan(statement)
    except ParseError:  # the guard parsed it already; unreachable in practice
        return set()
    return {int(statement[token.start + 1:token.end + 1]) for token in tokens if token.name == "PARAM"}


def check_statement(tool: ToolDefinition, guard: Guard, *, path: str) -> CheckedTool:
    """Approve the tool's SQL as ``query`` would approve it, or raise ToolsFileError at its ``sql:`` line."""
    try:
        approved = guard.check(tool.sql)
    except Refusal as exc:
        raise ToolsFileError(path, tool.sql_line, f"the sql is refused: {exc.reason}", tool=tool.name) from None
    used = placeholders(approved.statement)
    declared = len(tool.parameters)
    for number in sorted(used):
        if number < 1 or number > declared:
            listed = {0: "no parameters", 1: "1 parameter ($1)"}.get(declared,
                                                                     f"{declared} parameters ($1..${declared})")
            raise ToolsFileError(path, tool.sql_line, f"the sql uses ${number} but the tool declares {listed}; "
                                 "$n is the n-th entry of `parameters`: declare it or fix the placeholder",
                                 tool=tool.name)
    for number, param in enumerate(tool.parameters, start=1):
        if number not in used:
            raise ToolsFileError(path, param.line, f"parameter `{param.name}` is ${number} (its place in the "
                                 f"list) but the sql never uses ${number}; use it in the sql or remove the "
                                 "parameter", tool=tool.name)
    return CheckedTool(definition=tool, approved=approved)
