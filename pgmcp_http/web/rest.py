"""The TAS federation's REST convention: ``GET /mcp/tools/list`` and ``POST /mcp/tools/call``.

Same tools, same results as MCP's ``tools/call`` (the 2025-11-25 shapes): a
tool failure is HTTP 200 with ``isError: true``; only a malformed request or
an unknown tool is a 4xx, with the reason in the first bytes of the body
(the federation shows only the first 256), and a caller over its fair share
gets 429 with ``Retry-After``.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, current_app, request
from gunicorn.http.errors import ParseException

from pgmcp_http.errors import NotFoundError
from pgmcp_http.protocol import tool_entry, tool_result
from pgmcp_http.web.auth import CHALLENGE_STATUS, GATE_KEY, authorize, challenge_headers, scope_refusal
from pgmcp_http.web.exchange import note
from pgmcp_http.web.http import MAX_JSON_DEPTH, fair_share, json_response, rebinding_refusal, runtime, too_deep
from pgmcp_http.web.trail import Trail

__all__ = ["bp"]

bp = Blueprint("rest", __name__)


def _client_error(status: int, message: str) -> Response:
    return json_response({"error": message, "isError": True}, status)


@bp.before_request
def _check_origin() -> Response | None:
    refusal = rebinding_refusal(request.headers.get("Origin"), request.host, runtime().settings)
    return None if refusal is None else _client_error(403, refusal)


bp.before_request(authorize)


@bp.get("/mcp/tools/list")
def tools_list() -> Response:
    return json_response({"tools": [tool_entry(spec) for spec in runtime().toolbox.specs()]})


@bp.post("/mcp/tools/call")
def tools_call() -> Response:
    if request.mimetype != "application/json":
        return _client_error(415, "Content-Type must be application/json")
    try:
        data = request.get_data(cache=False)
    except (ParseException, OSError) as exc:  # a chunked body whose framing is broken, or cut short
        return _client_error(400, f"the request body could not be read: {str(exc)[:200] or type(exc).__name__}")
    try:
        body: Any = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return _client_error(400, f"the body is not valid JSON ({exc.msg})")
    if too_deep(body):
        return _client_error(400, f"the body nests arrays or objects more than {MAX_JSON_DEPTH} levels deep")
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        return _client_error(400, 'the body must be {"name": "<tool>", "arguments": {...}}')
    arguments = body.get("arguments") or {}
    if not isinstance(arguments, dict):
        return _client_error(400, "\"arguments\" must be an object")
    note(mcp_method="tools/call", tool=body["name"], mcp_era="rest")
    refusal = scope_refusal(current_app.extensions[GATE_KEY], runtime(), {"method": "tools/call", "params": body})
    if refusal is not None:
        note(outcome="insufficient_scope")
        return json_response(refusal.body, CHALLENGE_STATUS[refusal.kind], dict(challenge_headers(refusal)))
    with (Trail(runtime(), method="tools/call", params=body, headers=request.headers) as trail,
          fair_share().turn(trail.caller) as busy):
        if busy is not None:  # over its fair share: refused at once, nothing runs
            trail.replied(version=None, body=None, tool_error=True)
            trail.turned_away(busy, surface="rest")
            response = json_response({"error": busy.message, "isError": True}, 429,
                                     {"Retry-After": str(busy.retry_after_s)})
        else:
            response = _run(body["name"], arguments, trail)
        trail.sent(response.calculate_content_length())
    return response


def _run(name: str, arguments: dict[str, Any], trail: Trail) -> Response:
    """Run the tool for the trail's caller: its result, or 404 for a tool this server does not offer."""
    try:
        outcome = runtime().toolbox.call(name, arguments, caller=trail.caller, record=trail.record)
    except NotFoundError as exc:
        trail.replied(version=None, body={"error": {"message": str(exc)}})
        return _client_error(404, str(exc))
    trail.replied(version=None, body=None, tool_error=outcome.is_error)
    note(outcome=outcome.outcome)
    return json_response(tool_result(outcome, structured=True))
