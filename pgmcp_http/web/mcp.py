"""``POST /mcp``: MCP's streamable HTTP transport (both eras), answered with JSON bodies.

HTTP checks happen here in the order the transport specification gives them
(Origin and Host, then the token, content type, Accept, size, JSON);
everything after that is the protocol layer's. Status codes are decided here and only here.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Request, Response, g, request

from pgmcp_http.protocol import Reply, RoutingHeaders
from pgmcp_http.protocol.errors import INVALID_REQUEST, PARSE_ERROR
from pgmcp_http.web.auth import authorize
from pgmcp_http.web.http import (
    MAX_JSON_DEPTH,
    json_response,
    note,
    rebinding_refusal,
    runtime,
    too_deep,
)
from pgmcp_http.web.trail import Trail

__all__ = ["bp", "rpc_error"]

bp = Blueprint("mcp", __name__)

# HTTP status for JSON-RPC errors in the modern era (transport spec, 2026-07-28).
MODERN_ERROR_STATUS = {-32700: 400, -32600: 400, -32602: 400, -32020: 400, -32021: 400, -32022: 400, -32601: 404}
REJECTION_STATUS = {"malformed": 400, "missing_session": 400, "unknown_session": 404}
_ROUTING = ("mcp-protocol-version", "mcp-method", "mcp-name")


def rpc_error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A JSON-RPC error body (id null) with an HTTP status: for failures before a message is read."""
    return json_response({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}, status,
                         headers)


def _accepts_json(req: Request) -> bool:
    header = req.headers.get("Accept")
    if header is None or not header.strip():
        return True  # no Accept header means anything is acceptable (RFC 9110)
    types = {part.split(";")[0].strip().lower() for part in header.split(",")}
    return bool(types & {"application/json", "application/*", "*/*"})


def _routing_headers(req: Request) -> RoutingHeaders:
    duplicated = None
    seen: set[str] = set()
    for name, _ in req.headers.items():
        key = name.lower()
        if key in _ROUTING:
            if key in seen:
                duplicated = key
            seen.add(key)
    return RoutingHeaders(
        protocol_version=req.headers.get("MCP-Protocol-Version"),
        method=req.headers.get("Mcp-Method"),
        name=req.headers.get("Mcp-Name"),
        session_id=req.headers.get("Mcp-Session-Id"),
        duplicated=duplicated,
        caller=g.get("caller"),
    )


def _status(reply: Reply) -> int:
    if reply.rejection is not None:
        return REJECTION_STATUS[reply.rejection]
    if reply.body is None:
        return 202
    if reply.error_code is not None and reply.era == "modern":
        return MODERN_ERROR_STATUS.get(reply.error_code, 200)
    return 200


@bp.before_request
def _check_origin() -> Response | None:
    refusal = rebinding_refusal()
    return None if refusal is None else rpc_error(403, INVALID_REQUEST, refusal)


bp.before_request(authorize)


@bp.post("/mcp")
def post_mcp() -> Response:
    if request.mimetype != "application/json":
        return rpc_error(415, INVALID_REQUEST, "Content-Type must be application/json")
    if not _accepts_json(request):
        return rpc_error(406, INVALID_REQUEST, "the Accept header must allow application/json")
    try:
        message: Any = orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError as exc:
        return rpc_error(400, PARSE_ERROR, f"Parse error: the body is not valid JSON ({exc.msg})")
    if too_deep(message):
        return rpc_error(400, INVALID_REQUEST, f"Invalid Request: the message nests arrays or objects more than "
                                               f"{MAX_JSON_DEPTH} levels deep")
    with _trail(message) as trail:
        reply = runtime().dispatcher.dispatch(message, _routing_headers(request), caller=trail.caller,
                                              record=trail.record)
        trail.replied(version=reply.version, body=reply.body, error_code=reply.error_code,
                      tool_error=reply.outcome == "error")
        note(mcp_method=reply.method, mcp_version=reply.version, mcp_era=reply.era, tool=reply.tool,
             outcome=reply.outcome, rpc_error=reply.error_code)
        status = _status(reply)
        headers = {"Mcp-Session-Id": reply.session_id} if reply.session_id else None
        response = Response(status=status, headers=headers) if reply.body is None else json_response(
            reply.body, status, headers)
        trail.sent(response)
    return response


def _trail(message: Any) -> Trail:
    """The span and audit record of this message (only a request with a method gets either)."""
    if not isinstance(message, dict):
        return Trail(runtime(), method=None, params=None)
    method, params = message.get("method"), message.get("params")
    return Trail(runtime(), method=method if isinstance(method, str) else None,
                 params=params if isinstance(params, dict) else None, request_id=message.get("id"),
                 is_request="id" in message)


@bp.route("/mcp", methods=["GET", "DELETE"])
def other_methods() -> Response:
    """No server-to-client stream and no session deletion: sessions are signed tokens, not server state."""
    return rpc_error(405, INVALID_REQUEST, "Method Not Allowed: this server answers POST /mcp only",
                     {"Allow": "POST"})
