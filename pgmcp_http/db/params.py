"""Tool arguments to driver parameters.

Values bind to the ``%(pN)s`` placeholders the guard produced from ``$N``:
JSON scalars as themselves (psycopg2 quotes them; the text of the statement
is never built by formatting a value into it by us), arrays and objects as
JSON (``$1::jsonb``, or ``jsonb_array_elements($1)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from psycopg2.extras import Json

from pgmcp_http.sqlguard import param_key

__all__ = ["ParamCountError", "ParamError", "bind"]


class ParamError(ValueError):
    """A parameter value the statement cannot take; the message says which and why."""


class ParamCountError(ParamError):
    """The number of values does not match the statement's placeholders."""


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def bind(values: Sequence[Any], expected: int) -> dict[str, Any]:
    """Map ``values`` to ``{"p1": ..., "pN": ...}``, checking the count first."""
    if len(values) != expected:
        if expected == 0:
            raise ParamCountError(f"the statement has no $n placeholders but {len(values)} params were given; "
                                  "remove params or add $1..$n to the SQL")
        raise ParamCountError(f"the statement uses $1..${expected} ({expected} parameters) but "
                              f"{len(values)} params were given")
    bound: dict[str, Any] = {}
    for number, value in enumerate(values, start=1):
        if isinstance(value, str) and "\x00" in value:
            raise ParamError(f"parameter ${number} contains a NUL character (\\u0000), which PostgreSQL text "
                             "cannot hold; remove it or pass the data base64-encoded")
        if isinstance(value, (dict, list)):
            value = Json(value, dumps=_dumps)
        bound[param_key(number)] = value
    return bound
