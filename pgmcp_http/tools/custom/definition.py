"""What a tools file declares, validated strictly: every key known, every value in range.

Nothing here touches SQL or a database: this is the shape of the file. An
unknown key is an error rather than ignored, since a misspelt ``requried`` or
``max_row`` would otherwise silently change what the tool does. Every error
names the file, the line and the tool.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from pgmcp_http.config import TOOL_NAME
from pgmcp_http.tools.custom.errors import ToolsFileError
from pgmcp_http.tools.custom.yamlfile import LineDict, LineList

__all__ = ["PARAMETER_TYPES", "Ceilings", "Parameter", "ToolDefinition", "parse_document", "parameter_schema"]

PARAMETER_TYPES = ("string", "integer", "number", "boolean", "array")
ITEM_TYPES = ("string", "integer", "number", "boolean")
TOOL_KEYS = ("name", "title", "description", "parameters", "sql", "max_rows", "timeout", "max_cost",
             "max_estimated_rows", "output")
PARAMETER_KEYS = ("name", "type", "description", "required", "default", "enum", "minimum", "maximum", "pattern",
                  "items", "from_claim")
# A token claim a parameter may be bound to (``tenant_id``, ``https://example.com/org``...).
CLAIM_NAME = re.compile(r"^[\x21-\x7e]{1,256}$")
# A parameter name is a JSON property an agent types: an identifier, like a SQL column.
PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Ceilings:
    """The server's own limits, which a tool may tighten but not exceed (MAX_ROWS, QUERY_TIMEOUT)."""

    max_rows: int
    timeout_ms: int


@dataclass(frozen=True)
class Parameter:
    """One argument: its JSON type and constraints; its position in the list is its ``$n``."""

    name: str
    type: str
    description: str
    required: bool
    line: int
    has_default: bool = False
    default: Any = None
    enum: tuple[Any, ...] | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    pattern: str | None = None
    items: str | None = None
    from_claim: str | None = None
    """The caller's token claim this parameter is bound to: the caller cannot choose it and does not see it."""


@dataclass(frozen=True)
class ToolDefinition:
    """One tool as the file declares it (its SQL not yet checked)."""

    name: str
    title: str
    description: str
    sql: str
    parameters: tuple[Parameter, ...]
    line: int
    sql_line: int
    max_rows: int | None = None
    timeout_ms: int | None = None
    max_cost: float | None = None
    max_estimated_rows: float | None = None
    output: str | None = None


def parameter_schema(param: Parameter) -> dict[str, Any]:
    """The JSON Schema of one parameter, as ``tools/list`` shows it and the call is validated with."""
    schema: dict[str, Any] = {"type": param.type, "description": param.description}
    if param.items is not None:
        schema["items"] = {"type": param.items}
    if param.enum is not None:
        schema["enum"] = list(param.enum)
    if param.minimum is not None:
        schema["minimum"] = param.minimum
    if param.maximum is not None:
        schema["maximum"] = param.maximum
    if param.pattern is not None:
        schema["pattern"] = param.pattern
    if param.has_default:
        schema["default"] = param.default
    return schema


class _Context:
    """Raises errors that name the file, the line and (once known) the tool."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, line: int | None, message: str, tool: str | None = None) -> ToolsFileError:
        return ToolsFileError(self.path, line, message, tool=tool)


def parse_document(document: Any, *, path: str, ceilings: Ceilings, reserved: Collection[str]) -> list[ToolDefinition]:
    """Every tool of the file, in order; ``reserved`` are the built-in tool names, which none may take."""
    ctx = _Context(path)
    if document is None:
        raise ctx.fail(None, "the file is empty; it must hold `tools:` followed by a list of tools "
                             "(see examples/tools.yaml)")
    if not isinstance(document, LineDict):
        raise ctx.fail(getattr(document, "line", 1), "the file must be a mapping with one key, `tools:`, "
                                                     "holding a list of tools (see examples/tools.yaml)")
    _known_keys(ctx, document, ("tools",), "the file", None)
    entries = document.get("tools")
    if not isinstance(entries, LineList) or not entries:
        raise ctx.fail(document.line_of("tools"), "`tools:` must be a non-empty list of tools, each starting "
                                                  "with `- name:`")
    tools: list[ToolDefinition] = []
    seen: dict[str, int] = {}
    for entry, line in zip(entries, entries.item_lines, strict=True):
        tool = _tool(ctx, entry, line, ceilings)
        if tool.name in reserved:
            raise ctx.fail(tool.line, f"`{tool.name}` is the name of a built-in tool (built-in tools: "
                                      f"{', '.join(reserved)}); choose another name", tool.name)
        if tool.name in seen:
            raise ctx.fail(tool.line, f"the name `{tool.name}` is already used by the tool at line "
                                      f"{seen[tool.name]}; tool names must be unique", tool.name)
        seen[tool.name] = tool.line
        tools.append(tool)
    return tools


def _known_keys(ctx: _Context, mapping: LineDict, allowed: tuple[str, ...], what: str, tool: str | None) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise ctx.fail(mapping.line_of(key), f"unknown key `{key}` in {what}; {hint}allowed keys: "
                                                 f"{', '.join(allowed)}", tool)


def _optional_text(ctx: _Context, mapping: LineDict, key: str, tool: str | None, what: str = "the tool") -> str | None:
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ctx.fail(mapping.line_of(key), f"`{key}` of {what} must be non-empty text", tool)
    return value


def _required_text(ctx: _Context, mapping: LineDict, key: str, tool: str | None, what: str = "the tool") -> str:
    value = _optional_text(ctx, mapping, key, tool, what)
    if value is None:
        raise ctx.fail(mapping.line, f"{what} has no `{key}`; add one", tool)
    return value


def _whole(ctx: _Context, mapping: LineDict, key: str, tool: str, *, ceiling: int, ceiling_name: str,
           unit: str = "") -> int | None:
    value = mapping.get(key)
    if value is None:
        return None
    line = mapping.line_of(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.fail(line, f"`{key}` must be a whole number{unit}, not {value!r}", tool)
    if value < 1:
        raise ctx.fail(line, f"`{key}` is {value}; it must be at least 1{unit}", tool)
    if value > ceiling:
        raise ctx.fail(line, f"`{key}` is {value}{unit}, above {ceiling_name}={ceiling}, the server's ceiling; "
                             f"lower it or raise {ceiling_name}", tool)
    return value


def _positive(ctx: _Context, mapping: LineDict, key: str, tool: str) -> float | None:
    """An optional planner ceiling of the tool's own (cost units or rows): a number above 0."""
    value = mapping.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ctx.fail(mapping.line_of(key), f"`{key}` must be a number above 0, not {value!r}", tool)
    return float(value)


def _tool(ctx: _Context, entry: Any, line: int, ceilings: Ceilings) -> ToolDefinition:
    if not isinstance(entry, LineDict):
        raise ctx.fail(line, "each entry of `tools:` must be a mapping (`- name: ...` then its keys)")
    name = entry.get("name")
    valid = isinstance(name, str) and TOOL_NAME.match(name) is not None
    _known_keys(ctx, entry, TOOL_KEYS, "a tool", name if valid else None)  # a misspelt `name` is reported as such
    if not valid:
        shown = "has no `name`" if name is None else f"name {name!r} is not a valid MCP tool name"
        raise ctx.fail(entry.line_of("name"), f"the tool {shown}; use 1 to 128 letters, digits, `_`, `-` or `.` "
                                              "(e.g. revenue_report)")
    assert isinstance(name, str)
    description = _required_text(ctx, entry, "description", name)
    sql = _required_text(ctx, entry, "sql", name)
    parameters = _parameters(ctx, entry, name)
    return ToolDefinition(
        name=name,
        title=_optional_text(ctx, entry, "title", name) or name,
        description=description.strip(),
        sql=sql,
        parameters=parameters,
        line=entry.line_of("name"),
        sql_line=entry.line_of("sql"),
        max_rows=_whole(ctx, entry, "max_rows", name, ceiling=ceilings.max_rows, ceiling_name="MAX_ROWS"),
        timeout_ms=_whole(ctx, entry, "timeout", name, ceiling=ceilings.timeout_ms, ceiling_name="QUERY_TIMEOUT",
                          unit=" (milliseconds)"),
        max_cost=_positive(ctx, entry, "max_cost", name),
        max_estimated_rows=_positive(ctx, entry, "max_estimated_rows", name),
        output=(_optional_text(ctx, entry, "output", name) or "").strip() or None,
    )


def _parameters(ctx: _Context, entry: LineDict, tool: str) -> tuple[Parameter, ...]:
    raw = entry.get("parameters")
    if raw is None:
        return ()
    if not isinstance(raw, LineList):
        raise ctx.fail(entry.line_of("parameters"), "`parameters` must be a list, each item starting with "
                                                    "`- name:`", tool)
    params: list[Parameter] = []
    seen: dict[str, int] = {}
    for item, line in zip(raw, raw.item_lines, strict=True):
        param = _parameter(ctx, item, line, tool)
        if param.name in seen:
            raise ctx.fail(param.line, f"parameter `{param.name}` is declared twice (first at line "
                                       f"{seen[param.name]})", tool)
        seen[param.name] = param.line
        params.append(param)
    return tuple(params)


def _parameter(ctx: _Context, item: Any, line: int, tool: str) -> Parameter:
    if not isinstance(item, LineDict):
        raise ctx.fail(line, "each parameter must be a mapping (`- name: ...`, `type: ...`, `description: ...`)",
                       tool)
    name = item.get("name")
    valid = isinstance(name, str) and PARAMETER_NAME.match(name) is not None
    _known_keys(ctx, item, PARAMETER_KEYS, f"parameter `{name}`" if valid else "a parameter", tool)
    if not valid:
        shown = "has no `name`" if name is None else f"name {name!r} is not an identifier"
        raise ctx.fail(item.line_of("name"), f"a parameter {shown}; use letters, digits and `_`, starting with a "
                                             "letter (e.g. customer_id)", tool)
    assert isinstance(name, str)
    what = f"parameter `{name}`"
    kind = item.get("type")
    if kind not in PARAMETER_TYPES:
        shown = "has no `type`" if kind is None else f"has unknown type {kind!r}"
        raise ctx.fail(item.line_of("type"), f"{what} {shown}; use one of {', '.join(PARAMETER_TYPES)} (dates and "
                                             "times are strings: add a pattern and cast in SQL, e.g. $1::date)", tool)
    description = _required_text(ctx, item, "description", tool, what)
    items = _items(ctx, item, kind, what, tool)
    enum = _enum(ctx, item, kind, what, tool)
    minimum, maximum = _bounds(ctx, item, kind, what, tool)
    pattern = _pattern(ctx, item, kind, what, tool)
    has_default = "default" in item
    from_claim = _from_claim(ctx, item, what, tool)
    required = item.get("required", not has_default and from_claim is None)
    if not isinstance(required, bool):
        raise ctx.fail(item.line_of("required"), f"`required` of {what} must be true or false", tool)
    if required and has_default:
        raise ctx.fail(item.line_of("default"), f"{what} is required and has a default, which would never be "
                                                "used; drop `required: true` or the default", tool)
    param = Parameter(name=name, type=kind, description=description.strip(), required=required,
                      line=item.line_of("name"), has_default=has_default, default=item.get("default"),
                      enum=enum, minimum=minimum, maximum=maximum, pattern=pattern, items=items,
                      from_claim=from_claim)
    if has_default:
        _check_default(ctx, param, item.line_of("default"), tool)
    return param


def _from_claim(ctx: _Context, item: LineDict, what: str, tool: str) -> str | None:
    """``from_claim``: the claim whose value the parameter takes; it cannot also be required or defaulted,
    since the caller never passes it."""
    claim = item.get("from_claim")
    if claim is None:
        return None
    line = item.line_of("from_claim")
    if not isinstance(claim, str) or not CLAIM_NAME.match(claim):
        raise ctx.fail(line, f"`from_claim` of {what} must name a token claim (e.g. tenant_id)", tool)
    for key in ("required", "default"):
        if key in item:
            raise ctx.fail(item.line_of(key), f"{what} takes its value from the caller's `{claim}` claim, so it "
                                              f"cannot have `{key}`; remove it", tool)
    return claim


def _items(ctx: _Context, item: LineDict, kind: str, what: str, tool: str) -> str | None:
    items = item.get("items")
    if kind != "array":
        if items is not None:
            raise ctx.fail(item.line_of("items"), f"`items` applies to array parameters only ({what} is {_a(kind)})",
                           tool)
        return None
    if items not in ITEM_TYPES:
        shown = "has no `items`" if items is None else f"has items of unknown type {items!r}"
        raise ctx.fail(item.line_of("items") if items is not None else item.line, f"array {what} {shown}; say "
                       f"what it holds with `items:` {', '.join(ITEM_TYPES)} (it binds as a PostgreSQL array: "
                       "`= ANY($1::int[])`)", tool)
    return str(items)


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _matches_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _enum(ctx: _Context, item: LineDict, kind: str, what: str, tool: str) -> tuple[Any, ...] | None:
    enum = item.get("enum")
    if enum is None:
        return None
    line = item.line_of("enum")
    if kind not in ("string", "integer", "number"):
        raise ctx.fail(line, f"`enum` applies to string, integer or number parameters ({what} is {_a(kind)})", tool)
    if not isinstance(enum, LineList) or not enum:
        raise ctx.fail(line, f"`enum` of {what} must be a non-empty list of values", tool)
    for value in enum:
        if not _matches_type(value, kind):
            hint = " (quote it: YAML reads yes/no/on/off as booleans)" if isinstance(value, bool) else ""
            raise ctx.fail(line, f"`enum` value {value!r} of {what} is not {_a(kind)}{hint}", tool)
    if len(set(enum)) != len(enum):
        raise ctx.fail(line, f"`enum` of {what} lists a value twice", tool)
    return tuple(enum)


def _bounds(ctx: _Context, item: LineDict, kind: str, what: str,
            tool: str) -> tuple[int | float | None, int | float | None]:
    found: dict[str, int | float | None] = {}
    for key in ("minimum", "maximum"):
        value = item.get(key)
        if value is not None:
            if kind not in ("integer", "number"):
                raise ctx.fail(item.line_of(key), f"`{key}` applies to integer or number parameters ({what} is a "
                                                  f"{kind})", tool)
            if not _matches_type(value, "number"):
                raise ctx.fail(item.line_of(key), f"`{key}` of {what} must be a number, not {value!r}", tool)
        found[key] = value
    minimum, maximum = found["minimum"], found["maximum"]
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ctx.fail(item.line_of("maximum"), f"{what} has minimum {minimum} above its maximum {maximum}", tool)
    return minimum, maximum


def _pattern(ctx: _Context, item: LineDict, kind: str, what: str, tool: str) -> str | None:
    pattern = item.get("pattern")
    if pattern is None:
        return None
    line = item.line_of("pattern")
    if kind != "string":
        raise ctx.fail(line, f"`pattern` applies to string parameters ({what} is {_a(kind)})", tool)
    if not isinstance(pattern, str):
        raise ctx.fail(line, f"`pattern` of {what} must be a regular expression in quotes", tool)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ctx.fail(line, f"`pattern` of {what} is not a valid regular expression: {exc}", tool) from None
    return pattern


def _check_default(ctx: _Context, param: Parameter, line: int, tool: str) -> None:
    """The default must be a value the parameter's own schema accepts (a call could not pass it otherwise)."""
    if param.default is None:
        return  # `default: null` (or `default:`): omitted means SQL NULL, said explicitly
    error = best_match(Draft202012Validator(parameter_schema(param)).iter_errors(param.default))
    if error is not None:
        raise ctx.fail(line, f"the default of parameter `{param.name}` is invalid: {error.message}", tool)
