"""A custom tool's arguments to driver parameters: ``$n`` is the n-th declared parameter.

The Toolbox has already validated the arguments against the tool's input
schema, so only what JSON Schema cannot say is left: an omitted optional
parameter takes its default (or NULL), an integer sent as ``3.0`` binds as
``3`` (it would otherwise pick a ``numeric`` overload), a NUL character is
refused (PostgreSQL text cannot hold it), and an array binds as a
PostgreSQL array (``= ANY($1::int[])``). A parameter bound to a token claim
(``from_claim``) takes the caller's claim, checked against the parameter's
schema, and a caller whose token lacks it is refused (fail closed: never NULL,
which a policy such as ``tenant_id = $1 OR $1 IS NULL`` could read as "all").
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from psycopg2.extensions import AsIs

from pgmcp_http.sqlguard import param_key
from pgmcp_http.tools.custom.definition import Parameter, parameter_schema
from pgmcp_http.tools.spec import ToolError

__all__ = ["bind_arguments", "typed_nulls"]

# What the driver makes of a JSON value of each type: an int is an integer constant, a float a
# numeric one, a bool a boolean, a string an untyped literal PostgreSQL types from its context,
# a list an ARRAY[...] of its items.
_NULLS = {"integer": "NULL::integer", "number": "NULL::numeric", "boolean": "NULL::boolean", "string": "NULL"}
_ARRAY_NULLS = {"integer": "NULL::integer[]", "number": "NULL::numeric[]", "boolean": "NULL::boolean[]",
                "string": "NULL::text[]"}


def bind_arguments(parameters: Sequence[Parameter], arguments: Mapping[str, Any],
                   claims: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{"p1": ..., "pN": ...}`` for the guard's driver text, in the order the parameters are declared;
    ``claims`` are the caller's (``pgmcp.claims``), for parameters bound to one."""
    bound: dict[str, Any] = {}
    for number, param in enumerate(parameters, start=1):
        if param.from_claim is not None:
            value = _claim(param, param.from_claim, claims or {})
        else:
            value = arguments.get(param.name, param.default)
        bound[param_key(number)] = _value(param, value)
    return bound


@functools.cache
def _validator(param: Parameter) -> Draft202012Validator:
    """The schema validator of a claim-bound parameter, built once (such a parameter has no default, so it
    is hashable; tools live as long as the process)."""
    return Draft202012Validator(parameter_schema(param))


def _claim(param: Parameter, claim: str, claims: Mapping[str, Any]) -> Any:
    value = claims.get(claim)
    if value is None:
        raise ToolError(f"refused: parameter `{param.name}` is bound to the caller's `{claim}` claim, which this "
                        "caller's token does not carry; sign in with an account that has it", outcome="refused")
    if not _validator(param).is_valid(value):
        raise ToolError(f"refused: the caller's `{claim}` claim does not fit parameter `{param.name}` "
                        f"({param.type}); ask the identity provider's administrator", outcome="refused")
    return value


def _value(param: Parameter, value: Any) -> Any:
    if isinstance(value, list):
        return [_scalar(param, item, param.items) for item in value]
    return _scalar(param, value, param.type)


def _scalar(param: Parameter, value: Any, kind: str | None) -> Any:
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and "\x00" in value:
        raise ToolError(f"invalid argument `{param.name}`: it contains a NUL character (\\u0000), which "
                        "PostgreSQL text cannot hold; remove it", outcome="invalid_arguments")
    return value


def typed_nulls(parameters: Sequence[Parameter]) -> dict[str, Any]:
    """A NULL for each parameter, typed the way a real argument of that type reaches PostgreSQL.

    Planning binds these, so ``$1 - $1`` over an integer parameter plans as
    it will run (two untyped NULLs would leave PostgreSQL unable to choose an
    operator). The texts are constants of this module, never caller input.
    """
    nulls: dict[str, Any] = {}
    for number, param in enumerate(parameters, start=1):
        text = _ARRAY_NULLS[param.items or "string"] if param.type == "array" else _NULLS[param.type]
        nulls[param_key(number)] = AsIs(text)
    return nulls
