"""Results in the shape each revision defines, validated by ``mcp_types``.

Handshake revisions share one schema in ``mcp_types`` (2025-11-25's), so
fields that older revisions lack are removed here first; modern results gain
``resultType``, cache hints and the server-info stamp. Every result but
``tools/call``'s then goes through ``mcp_types.methods.serialize_server_result``,
which validates it and drops anything the revision's schema does not define;
``tools/call`` results are built here in exactly that shape (the validator
would return them unchanged: ``tests/test_protocol_shapes.py``), and skip it
because it is the hot path.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp_types import SERVER_INFO_META_KEY
from mcp_types import methods as wire
from pydantic import ValidationError

from pgmcp_http.protocol.errors import INTERNAL_ERROR, RpcError
from pgmcp_http.protocol.versions import MODERN_VERSIONS, at_least

__all__ = ["CACHE_HINTS", "shape_result"]

log = logging.getLogger(__name__)

# (ttlMs, cacheScope) per cacheable method. Resources depend on who asks once
# per-caller roles exist, so they are private; the tool list is the same for all.
CACHE_HINTS: dict[str, tuple[int, str]] = {
    "server/discover": (300_000, "public"),
    "tools/list": (300_000, "public"),
    "resources/list": (60_000, "private"),
    "resources/templates/list": (300_000, "public"),
    "resources/read": (30_000, "private"),
    "prompts/list": (300_000, "public"),
}

# Fields a revision added, so that older revisions never see them.
_TOOL_FIELDS_SINCE = {"annotations": "2025-03-26", "title": "2025-06-18", "outputSchema": "2025-06-18",
                      "icons": "2025-11-25"}
_NAMED_FIELDS_SINCE = {"title": "2025-06-18", "icons": "2025-11-25"}


def _strip(entry: dict[str, Any], since: dict[str, str], version: str) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if key not in since or at_least(version, since[key])}


def _for_handshake(method: str, version: str, result: dict[str, Any]) -> dict[str, Any]:
    if method == "tools/list":
        return {**result, "tools": [_strip(tool, _TOOL_FIELDS_SINCE, version) for tool in result["tools"]]}
    if method == "tools/call" and not at_least(version, "2025-06-18"):
        return {key: value for key, value in result.items() if key != "structuredContent"}
    if method == "initialize":
        return {**result, "serverInfo": _strip(result["serverInfo"], _NAMED_FIELDS_SINCE, version)}
    if method == "resources/list":
        return {**result, "resources": [_strip(r, _NAMED_FIELDS_SINCE, version) for r in result["resources"]]}
    if method == "resources/templates/list":
        return {**result, "resourceTemplates": [_strip(t, _NAMED_FIELDS_SINCE, version)
                                                for t in result["resourceTemplates"]]}
    return result


def _for_modern(method: str, result: dict[str, Any], server_info: dict[str, Any]) -> dict[str, Any]:
    shaped = {"resultType": "complete", **result}
    hint = CACHE_HINTS.get(method)
    if hint is not None:
        shaped.setdefault("ttlMs", hint[0])
        shaped.setdefault("cacheScope", hint[1])
    shaped["_meta"] = {**shaped.get("_meta", {}), SERVER_INFO_META_KEY: server_info}
    return shaped


def shape_result(method: str, version: str, result: dict[str, Any], *, server_info: dict[str, Any]) -> dict[str, Any]:
    """``result`` as revision ``version`` defines it for ``method``; RpcError if it does not fit (a bug).

    A ``tools/call`` result is the one exception to the validation: it is built only by
    :func:`~pgmcp_http.protocol.server.tool_result` from fields every revision defines (text content,
    ``isError``, ``structuredContent`` where the revision has it, removed above where it has not), and
    validating it would walk every row of the result on every call.
    ``tests/test_protocol_shapes.py`` checks that the validation would return it unchanged.
    """
    if version in MODERN_VERSIONS:
        shaped = _for_modern(method, result, server_info)
    else:
        shaped = _for_handshake(method, version, result)
    if method == "tools/call":
        return shaped
    try:
        return wire.serialize_server_result(method, version, shaped)
    except KeyError:
        # A method the revision's surface has no result type for (e.g. an empty result): send as built.
        return shaped
    except ValidationError:
        log.exception("the %s result does not fit revision %s", method, version)
        raise RpcError(INTERNAL_ERROR, "internal error: the server built an invalid result") from None
