"""The revision's schema check of a client request, not repeated for a ``tools/call`` shape already passed.

mcp_types checks a request by building its pydantic models: about 50,000
instructions of the 870,000 a tool call costs in process (callgrind), the
largest single step of the protocol layer. An agent calls the same tools with
the same ``_meta`` again and again, and the part that changes, ``arguments``,
is typed ``dict[str, Any] | None`` in every revision (checked below, at
import): any JSON object, or null, passes. So a ``tools/call`` whose params,
``arguments`` aside, are byte for byte those of a request that passed, and
whose ``arguments`` is an object or null or absent as it was then, would pass
again: it is not checked again. Everything else is checked every time, and so
is a request whose params without ``arguments`` are longer than 4 KiB. (A
client that sends a new ``_meta.progressToken`` with every call gets no
benefit: each of its calls is a new shape.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from mcp_types import methods as wire

__all__ = ["MAX_REMEMBERED", "MAX_SHAPE_BYTES", "REMEMBERED_VERSIONS", "validate_client_request"]

MAX_REMEMBERED = 4096
MAX_SHAPE_BYTES = 4096  # a bigger shape (junk keys the schema ignores) is checked every time: at most 16 MiB kept
TOOLS_CALL = "tools/call"


def _arguments_take_any_object(version: str) -> bool:
    """Whether ``tools/call``'s ``arguments`` is a plain ``dict[str, Any] | None`` in ``version``'s schema:
    no constraint on the field, and no validator on the params or the request that could look at it."""
    model = wire.CLIENT_REQUESTS.get((TOOLS_CALL, version))
    params = model.model_fields["params"].annotation if model is not None else None
    field = getattr(params, "model_fields", {}).get("arguments")
    return (field is not None and field.annotation == (dict[str, Any] | None) and not field.metadata
            and not _validators(model) and not _validators(params))


def _validators(model: Any) -> bool:
    decorators = getattr(model, "__pydantic_decorators__", None)
    return decorators is None or bool(decorators.field_validators or decorators.model_validators)


REMEMBERED_VERSIONS = frozenset(version for method, version in wire.CLIENT_REQUESTS
                                if method == TOOLS_CALL and _arguments_take_any_object(version))
_passed: dict[tuple[str, bytes, str], None] = {}
_ABSENT: Any = object()


def _shape(version: str, params: Mapping[str, Any] | None) -> tuple[str, bytes, str] | None:
    """What decides whether ``params`` pass, when only ``arguments``' kind matters; else None."""
    if version not in REMEMBERED_VERSIONS or type(params) is not dict:
        return None
    arguments = params.get("arguments", _ABSENT)
    if arguments is _ABSENT:
        kind = "absent"
    elif arguments is None:
        kind = "null"
    elif type(arguments) is dict:
        kind = "object"
    else:
        return None
    rest = {key: value for key, value in params.items() if key != "arguments"}
    try:
        text = orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        return None
    return (version, text, kind) if len(text) <= MAX_SHAPE_BYTES else None


def validate_client_request(method: str, version: str, params: Mapping[str, Any] | None) -> None:
    """:func:`mcp_types.methods.validate_client_request`, skipped for a ``tools/call`` shape that passed.

    Raises what it raises: ValueError (unknown revision), KeyError (method not in the revision),
    pydantic.ValidationError (params that do not fit).
    """
    shape = _shape(version, params) if method == TOOLS_CALL else None
    if shape is not None and shape in _passed:
        return
    wire.validate_client_request(method, version, params)
    if shape is not None:
        if len(_passed) >= MAX_REMEMBERED:
            _passed.clear()  # made-up shapes cannot grow it without bound; the common ones come back
        _passed[shape] = None
