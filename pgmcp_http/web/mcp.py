"""``/mcp``: MCP's streamable HTTP transport (both eras), answered with JSON bodies.

This is the hot path of the server, so it is a plain WSGI application rather
than a Flask view: Flask's request context, URL map and hooks cost more per
call than everything below (the profile in bench/results/2026-11-25.md), and
none of them is needed for one fixed route. Every other route is Flask's.

HTTP checks happen here in the order the transport specification gives them
(Origin and Host, then the token, method, content type, Accept, size, JSON);
everything after that is the protocol layer's. Status codes are decided here
and only here.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any

import orjson
from gunicorn.http.errors import ParseException

from pgmcp_http.auth.gate import Challenge, Gate
from pgmcp_http.fairshare import NO_TURN, SHARED_METHODS, FairShare, Turn
from pgmcp_http.identity import Caller
from pgmcp_http.protocol import Reply, RoutingHeaders
from pgmcp_http.protocol.errors import INTERNAL_ERROR, INVALID_REQUEST, PARSE_ERROR
from pgmcp_http.runtime import Runtime
from pgmcp_http.web.access import AccessLog, HttpSeries
from pgmcp_http.web.auth import CHALLENGE_STATUS, challenge_headers, scope_refusal
from pgmcp_http.web.exchange import Exchange, begin, finish, note
from pgmcp_http.web.http import BODY_TOO_LARGE, MAX_JSON_DEPTH, rebinding_refusal, too_deep
from pgmcp_http.web.trail import Trail

__all__ = ["PATH", "McpEndpoint", "WsgiHeaders", "rpc_error_body"]

log = logging.getLogger(__name__)

PATH = "/mcp"
# HTTP status for JSON-RPC errors in the modern era (transport spec, 2026-07-28).
MODERN_ERROR_STATUS = {-32700: 400, -32600: 400, -32602: 400, -32020: 400, -32021: 400, -32022: 400, -32601: 404}
REJECTION_STATUS = {"malformed": 400, "missing_session": 400, "unknown_session": 404}
# What a browser page on an allowed Origin may send and read (CORS preflight and responses).
CORS_REQUEST_HEADERS = ("Authorization, Content-Type, Accept, MCP-Protocol-Version, Mcp-Session-Id, Mcp-Method, "
                        "Mcp-Name, Last-Event-ID, X-Request-Id")
CORS_EXPOSED_HEADERS = "WWW-Authenticate, Mcp-Session-Id, X-Request-Id"
_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}

Headers = list[tuple[str, str]]
Answer = tuple[int, Headers, bytes]
StartResponse = Callable[..., Any]


class WsgiHeaders(Mapping[str, str]):
    """A request's headers read straight from the WSGI environ, names in any case (a lookup is one
    dict access: werkzeug's EnvironHeaders scans the environ for several of them)."""

    __slots__ = ("environ",)

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self.environ = environ

    @staticmethod
    @functools.lru_cache(maxsize=256)  # header names come from this code (and AUTH_HEADER), not from clients
    def _key(name: str) -> str:
        key = name.upper().replace("-", "_")
        return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key

    def __getitem__(self, name: str) -> str:
        return str(self.environ[self._key(name)])

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return self.environ.get(self._key(name), default)

    def __iter__(self) -> Iterator[str]:
        for key in self.environ:
            if key.startswith("HTTP_"):
                yield key[5:].replace("_", "-").title()
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                yield key.replace("_", "-").title()

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return True  # (a request always has headers; spares the scan __len__ would make)


def rpc_error_body(code: int, message: str) -> dict[str, Any]:
    """A JSON-RPC error with id null: for failures before a message is read."""
    return {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}


def _json(status: int, payload: Any, headers: Headers | None = None) -> Answer:
    return status, [("Content-Type", "application/json"), *(headers or [])], orjson.dumps(payload)


def _rpc_error(status: int, code: int, message: str, headers: Headers | None = None) -> Answer:
    return _json(status, rpc_error_body(code, message), headers)


@functools.lru_cache(maxsize=64)  # clients send one Accept value over and over
def _accepts_json(header: str | None) -> bool:
    if header is None or not header.strip():
        return True  # no Accept header means anything is acceptable (RFC 9110)
    types = {part.split(";")[0].strip().lower() for part in header.split(",")}
    return bool(types & {"application/json", "application/*", "*/*"})


def _routing_headers(headers: Mapping[str, str], caller: str | None) -> RoutingHeaders:
    """The routing headers as plain data. A WSGI server joins a repeated header's values with commas,
    and no routing value has one (revisions and method names never do; ``Mcp-Name`` is base64 when it
    would), so a comma in the version or method header means the header was sent twice."""
    version, method = headers.get("MCP-Protocol-Version"), headers.get("Mcp-Method")
    duplicated = ("mcp-protocol-version" if version is not None and "," in version
                  else "mcp-method" if method is not None and "," in method else None)
    return RoutingHeaders(protocol_version=version, method=method, name=headers.get("Mcp-Name"),
                          session_id=headers.get("Mcp-Session-Id"), duplicated=duplicated, caller=caller)


def _status(reply: Reply) -> int:
    if reply.rejection is not None:
        return REJECTION_STATUS[reply.rejection]
    if reply.body is None:
        return 202
    if reply.error_code is not None and reply.era == "modern":
        return MODERN_ERROR_STATUS.get(reply.error_code, 200)
    return 200


_HOST = re.compile(r"(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?")


def _host(environ: Mapping[str, Any]) -> str:
    """The request's host as werkzeug's ``request.host`` reads it: the Host header, "" when that is empty
    or not a plain host name (the rebinding check then refuses it), SERVER_NAME:PORT without one."""
    host = environ.get("HTTP_HOST")
    if host is not None:
        return str(host) if _HOST.fullmatch(str(host)) else ""
    return f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"


class McpEndpoint:
    """The WSGI application of ``/mcp``: POST answers one JSON-RPC message; GET and DELETE are 405."""

    def __init__(self, runtime: Runtime, gate: Gate, access: AccessLog, http: HttpSeries, *,
                 body_limit: int, shares: FairShare | None = None) -> None:
        self.runtime = runtime
        self.gate = gate
        self.access = access
        self.http = http
        self.body_limit = body_limit
        self.shares = shares or FairShare()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        exchange = begin(environ.get("HTTP_X_REQUEST_ID"))
        batch = self.runtime.metrics.batch
        batch.hold()  # this request's metric writes are made together with the others in flight
        failed = False
        try:
            try:
                status, headers, body = self._answer(environ, exchange)
            except Exception:
                log.exception("unhandled error", extra={"request_id": exchange.request_id})
                failed = True
                status, headers, body = _rpc_error(500, INTERNAL_ERROR, f"internal error (request id "
                                                   f"{exchange.request_id}); the server log has the details")
            headers.append(("Content-Length", str(len(body))))
            headers.append(("X-Request-Id", exchange.request_id))
            method = environ.get("REQUEST_METHOD", "")
            seconds = self.access.record(exchange, method=method, path=PATH, status=status)
            self.http.record(method, status, seconds, failed=failed)
        finally:
            batch.release()
            finish(exchange)
        start_response(_STATUS_LINES.get(status, str(status)), headers)
        return [body]

    def _answer(self, environ: dict[str, Any], exchange: Exchange) -> Answer:
        headers = WsgiHeaders(environ)
        origin = headers.get("Origin")
        refusal = rebinding_refusal(origin, _host(environ), self.runtime.settings)
        if refusal is not None:
            return _rpc_error(403, INVALID_REQUEST, refusal)
        status, answer_headers, body = self._admitted(environ, headers, exchange)
        if origin is not None:  # an Origin the rebinding check allowed: let that page read the answer
            answer_headers = [(name, value) for name, value in answer_headers
                              if name != "Access-Control-Expose-Headers"]
            answer_headers += [("Access-Control-Allow-Origin", origin), ("Vary", "Origin"),
                               ("Access-Control-Expose-Headers", CORS_EXPOSED_HEADERS)]
        return status, answer_headers, body

    def _admitted(self, environ: dict[str, Any], headers: WsgiHeaders, exchange: Exchange) -> Answer:
        if environ.get("REQUEST_METHOD") == "OPTIONS":  # a CORS preflight carries no credential
            return 204, [("Allow", "POST"), ("Access-Control-Allow-Methods", "POST"),
                         ("Access-Control-Allow-Headers", CORS_REQUEST_HEADERS),
                         ("Access-Control-Max-Age", "600")], b""
        verdict = self.gate.admit(headers)
        if isinstance(verdict, Challenge):
            note(outcome="unauthorized" if verdict.kind == "unauthorized" else "auth_unavailable")
            return _json(CHALLENGE_STATUS[verdict.kind], verdict.body, challenge_headers(verdict))
        exchange.identity, exchange.caller = verdict.identity, verdict.caller
        if environ.get("REQUEST_METHOD") != "POST":
            # No server-to-client stream and no session deletion: sessions are signed tokens, not state.
            return _rpc_error(405, INVALID_REQUEST, "Method Not Allowed: this server answers POST /mcp only",
                              [("Allow", "POST")])
        if (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower() != "application/json":
            return _rpc_error(415, INVALID_REQUEST, "Content-Type must be application/json")
        if not _accepts_json(headers.get("Accept")):
            return _rpc_error(406, INVALID_REQUEST, "the Accept header must allow application/json")
        try:
            data = self._body(environ)
        except (ParseException, OSError) as exc:  # a chunked body whose framing is broken, or cut short
            reason = str(exc)[:200] or type(exc).__name__
            return _rpc_error(400, INVALID_REQUEST, f"the request body could not be read: {reason}")
        if data is None:
            return _rpc_error(413, INVALID_REQUEST, BODY_TOO_LARGE)
        try:
            message: Any = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return _rpc_error(400, PARSE_ERROR, f"Parse error: the body is not valid JSON ({exc.msg})")
        if too_deep(message, raw=data):
            return _rpc_error(400, INVALID_REQUEST, f"Invalid Request: the message nests arrays or objects more "
                                                    f"than {MAX_JSON_DEPTH} levels deep")
        forbidden = scope_refusal(self.gate, self.runtime, message)
        if forbidden is not None:  # before anything runs: a client steps up on this 403 and retries
            note(outcome="insufficient_scope")
            return _json(CHALLENGE_STATUS[forbidden.kind], forbidden.body, challenge_headers(forbidden))
        return self._dispatch(message, headers, exchange)

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        """The request body, or None when it is over MAX_REQUEST_BYTES (announced or, when chunked, read)."""
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        if length:
            size = int(length)  # the server has already refused a Content-Length that is not a number
            if size > self.body_limit:
                return None
            return bytes(stream.read(size))
        data = bytes(stream.read(self.body_limit + 1))
        return None if len(data) > self.body_limit else data

    def _dispatch(self, message: Any, headers: WsgiHeaders, exchange: Exchange) -> Answer:
        with _trail(self.runtime, message, headers) as trail, self._turn(message, trail.caller) as busy:
            reply = self.runtime.dispatcher.dispatch(message, _routing_headers(headers, exchange.caller),
                                                     caller=trail.caller, record=trail.record,
                                                     busy=busy.message if busy is not None else None)
            trail.replied(version=reply.version, body=reply.body, error_code=reply.error_code,
                          tool_error=reply.outcome in ("error", "busy"))
            note(mcp_method=reply.method, mcp_version=reply.version, mcp_era=reply.era, tool=reply.tool,
                 outcome=reply.outcome, rpc_error=reply.error_code)
            if busy is not None and reply.outcome == "busy":
                trail.turned_away(busy, surface="mcp")
            extra = [("Mcp-Session-Id", reply.session_id)] if reply.session_id else []
            if reply.body is None:
                answer: Answer = (_status(reply), extra, b"")
            else:
                answer = _json(_status(reply), reply.body, extra)
            trail.sent(len(answer[2]))
        return answer


    def _turn(self, message: Any, caller: Caller | None) -> Turn:
        """The caller's turn for a call that counts towards its fair share (``tools/call`` and
        ``resources/read`` requests); every other message holds nothing."""
        if isinstance(message, dict) and message.get("method") in SHARED_METHODS and "id" in message:
            return self.shares.turn(caller)
        return NO_TURN


def _trail(runtime: Runtime, message: Any, headers: Mapping[str, str]) -> Trail:
    """The span and audit record of this message (only a request with a method gets either)."""
    if not isinstance(message, dict):
        return Trail(runtime, method=None, params=None, headers=headers)
    method, params = message.get("method"), message.get("params")
    return Trail(runtime, method=method if isinstance(method, str) else None,
                 params=params if isinstance(params, dict) else None, headers=headers,
                 request_id=message.get("id"), is_request="id" in message)
