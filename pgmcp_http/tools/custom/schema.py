"""The JSON Schemas a custom tool shows in ``tools/list``: its arguments, and its rows."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from pgmcp_http.db import Column
from pgmcp_http.tools.custom.definition import Parameter, parameter_schema
from pgmcp_http.tools.query import FORMAT_SCHEMA
from pgmcp_http.tools.results import ROWS_OUTPUT_SCHEMA

__all__ = ["FORMAT_ARGUMENT", "input_schema", "output_schema"]


FORMAT_ARGUMENT = "format"


def input_schema(parameters: Sequence[Parameter]) -> dict[str, Any]:
    """An object with one property per parameter; nothing else is accepted (a typo is an error, not ignored).

    ``format`` (how the rows are written in the text, as for ``query``) is
    offered too, unless a parameter already has that name. A parameter bound to a claim (``from_claim``) is
    not offered at all: the caller's token fills it in.
    """
    properties = {param.name: parameter_schema(param) for param in parameters if param.from_claim is None}
    if FORMAT_ARGUMENT not in properties:
        properties[FORMAT_ARGUMENT] = FORMAT_SCHEMA
    return {
        "type": "object",
        "properties": properties,
        "required": [param.name for param in parameters if param.required and param.from_claim is None],
        "additionalProperties": False,
    }


def output_schema(columns: Sequence[Column] | None, output: str | None) -> dict[str, Any]:
    """``query``'s result shape; when planning described the columns, each row's keys with their types.

    Column entries carry only a description (the PostgreSQL type), no JSON
    type: every column may be NULL, and numeric or timestamp values are
    strings, so a stricter schema would be wrong for some rows.
    """
    schema = copy.deepcopy(ROWS_OUTPUT_SCHEMA)
    if output:
        schema["description"] = output
    if columns:
        rows = schema["properties"]["rows"]
        rows["items"] = {
            "type": "object",
            "properties": {col.key: {"description": f"{col.name} ({col.type})" if col.key != col.name else col.type}
                           for col in columns},
        }
        rows["description"] = "Rows as objects keyed by column: " + ", ".join(col.key for col in columns) + "."
    return schema
