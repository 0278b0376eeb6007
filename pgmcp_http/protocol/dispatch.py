"""JSON-RPC framing and the two eras: one decoded message in, one :class:`Reply` out.

No HTTP here: the routing headers arrive as plain data and the reply says what
happened (``rejection`` for transport-level failures such as a missing or
unknown session); the web layer picks the status code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from mcp_types import PROTOCOL_VERSION_META_KEY

from pgmcp_http.callrecord import CallRecord
from pgmcp_http.identity import Caller
from pgmcp_http.protocol.cancellation import Canceller, RequestTags
from pgmcp_http.protocol.envelope import RoutingHeaders, read_envelope, unsupported_version
from pgmcp_http.protocol.errors import INTERNAL_ERROR, INVALID_REQUEST, RpcError
from pgmcp_http.protocol.server import BusyError, CallContext, McpServer
from pgmcp_http.protocol.sessions import InvalidSession, SessionCodec
from pgmcp_http.protocol.versions import HANDSHAKE_VERSIONS, MODERN_VERSIONS

__all__ = ["Dispatcher", "Reply"]

log = logging.getLogger(__name__)

HANDSHAKE = "handshake"
MODERN = "modern"


@dataclass(slots=True)
class Reply:
    """The outcome of one message.

    ``body`` is the JSON-RPC response (None for an accepted notification);
    ``rejection`` names a transport-level refusal (``malformed``,
    ``missing_session``, ``unknown_session``) for the web
    layer to turn into a status code; ``session_id`` is set on a successful
    ``initialize``; ``outcome`` is ``ok``, ``error`` or ``busy`` (refused for
    the caller's fair share) for a call, what a cancellation did for
    ``notifications/cancelled``.
    """

    body: dict[str, Any] | None
    era: str
    method: str | None = None
    version: str | None = None
    error_code: int | None = None
    rejection: str | None = None
    session_id: str | None = None
    tool: str | None = None
    outcome: str | None = None


def _error(request_id: Any, error: RpcError, *, era: str, method: str | None = None,
           version: str | None = None, rejection: str | None = None) -> Reply:
    body = {"jsonrpc": "2.0", "id": request_id, "error": error.to_dict()}
    return Reply(body=body, era=era, method=method, version=version, error_code=error.code, rejection=rejection)


def _malformed(message: str, request_id: Any = None) -> Reply:
    return _error(request_id, RpcError(INVALID_REQUEST, message), era=HANDSHAKE, rejection="malformed")


def _is_valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


class Dispatcher:
    """Routes each message to the right era and method, holding no state between messages."""

    def __init__(self, server: McpServer, sessions: SessionCodec, *, tags: RequestTags | None = None,
                 canceller: Canceller | None = None) -> None:
        self.server = server
        self.sessions = sessions
        self.tags = tags
        self.canceller = canceller

    def dispatch(self, message: Any, headers: RoutingHeaders, *, caller: Caller | None = None,
                 record: CallRecord | None = None, busy: str | None = None) -> Reply:
        """Answer one message. ``caller`` is who sent it (its SQL runs as the caller's role); ``record``,
        when the web layer audits this request, receives the revision and client it used; ``busy``, when the
        caller is over its fair share, is the answer a ``tools/call`` or ``resources/read`` gets instead of
        running (once the message has passed every check; the reply's ``outcome`` is then ``busy``)."""
        if isinstance(message, list):
            return _malformed("batch requests are not supported; send one JSON-RPC message per POST")
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return _malformed("the body must be one JSON-RPC 2.0 object with \"jsonrpc\": \"2.0\"")
        method = message.get("method")
        has_id = "id" in message
        if method is None and has_id and ("result" in message or "error" in message):
            return Reply(body=None, era=HANDSHAKE)  # a client's response: this server sends no requests
        if not isinstance(method, str):
            return _malformed("the message has no \"method\" string", message.get("id") if has_id else None)
        if has_id and not _is_valid_id(message["id"]):
            return _malformed("\"id\" must be a string or an integer")
        params = message.get("params")
        if params is not None and not isinstance(params, dict):
            return _malformed("\"params\" must be an object", message.get("id"))
        era = self._era(method, params, headers)
        if not has_id:
            return self._notification(method, era, headers, params)
        request_id = message["id"]
        if era == MODERN:
            return self._modern(request_id, method, params, headers, caller, record, busy)
        return self._handshake(request_id, method, params, headers, caller, record, busy)

    @staticmethod
    def _era(method: str, params: Mapping[str, Any] | None, headers: RoutingHeaders) -> str:
        """Modern when the version header names a non-handshake revision, or when a request without
        session or version header carries the modern envelope (then the header check explains)."""
        version = headers.protocol_version
        if version is not None:
            return HANDSHAKE if version in HANDSHAKE_VERSIONS else MODERN
        if headers.session_id is None and method != "initialize" and isinstance(params, Mapping):
            meta = params.get("_meta")
            if isinstance(meta, Mapping) and PROTOCOL_VERSION_META_KEY in meta:
                return MODERN
        return HANDSHAKE

    def _notification(self, method: str, era: str, headers: RoutingHeaders,
                      params: Mapping[str, Any] | None) -> Reply:
        if era == MODERN:
            requested = headers.protocol_version or ""
            if requested not in MODERN_VERSIONS:
                return _error(None, unsupported_version(requested), era=era, method=method)
            # Without authentication a 2026-07-28 caller has no identity: cancelling would let anyone stop
            # anyone's request by guessing its id, so it is ignored (sessions still cancel their own).
            outcome = (self._cancel(method, params, _modern_scope(headers)) if headers.caller is not None
                       else "ignored" if method == "notifications/cancelled" else None)
            return Reply(body=None, era=era, method=method, version=requested, outcome=outcome)
        if headers.session_id is not None:
            try:
                claims = self.sessions.verify(headers.session_id)
            except InvalidSession as exc:
                return _error(None, RpcError(INVALID_REQUEST, f"{exc}; initialize again"), era=era,
                              method=method, rejection="unknown_session")
            outcome = self._cancel(method, params, _session_scope(claims.nonce))
            return Reply(body=None, era=era, method=method, version=claims.version, outcome=outcome)
        return Reply(body=None, era=era, method=method)

    def _cancel(self, method: str, params: Mapping[str, Any] | None, scope: str) -> str | None:
        """For ``notifications/cancelled``: stop the caller's own request, wherever it runs."""
        if method != "notifications/cancelled" or self.tags is None or self.canceller is None:
            return None
        request_id = (params or {}).get("requestId")
        if not _is_valid_id(request_id):
            return "ignored"  # a notification cannot be answered with an error
        stopped = self.canceller.cancel(self.tags.tag(scope, request_id))
        return "cancelled" if stopped else "not_running"

    def _modern(self, request_id: Any, method: str, params: Mapping[str, Any] | None,
                headers: RoutingHeaders, caller: Caller | None, record: CallRecord | None,
                busy: str | None = None) -> Reply:
        try:
            envelope = read_envelope(method, params, headers)
        except RpcError as exc:
            return _error(request_id, exc, era=MODERN, method=method, version=headers.protocol_version)
        if record is not None:
            record.protocol_version = envelope.version
            record.note_client(envelope.client_info)
        ctx = CallContext(era=MODERN, version=envelope.version, client_info=envelope.client_info,
                          cancel_tag=self._tag(method, _modern_scope(headers), request_id), caller=caller,
                          record=record, busy=busy)
        return self._call(request_id, method, params, ctx)

    def _handshake(self, request_id: Any, method: str, params: Mapping[str, Any] | None,
                   headers: RoutingHeaders, caller: Caller | None, record: CallRecord | None,
                   busy: str | None = None) -> Reply:
        if method == "initialize":
            try:
                result, version = self.server.initialize(params)
            except RpcError as exc:
                return _error(request_id, exc, era=HANDSHAKE, method=method)
            info = (params or {}).get("clientInfo")
            client = (info.get("name"), info.get("version")) if isinstance(info, Mapping) else None
            return Reply(body={"jsonrpc": "2.0", "id": request_id, "result": result}, era=HANDSHAKE,
                         method=method, version=version, session_id=self.sessions.issue(version, client))
        if headers.session_id is None:
            return _error(request_id, RpcError(INVALID_REQUEST, "missing Mcp-Session-Id header: send initialize "
                                               "first and repeat the session id it returns"),
                          era=HANDSHAKE, method=method, rejection="missing_session")
        try:
            claims = self.sessions.verify(headers.session_id)
        except InvalidSession as exc:
            return _error(request_id, RpcError(INVALID_REQUEST, f"{exc}; initialize a new session"),
                          era=HANDSHAKE, method=method, rejection="unknown_session")
        # A supported handshake revision in MCP-Protocol-Version that differs from the session's is
        # accepted (the transport asks for 400 only for an invalid or unsupported one; the SDKs do the
        # same); the answer keeps the session's revision. An unsupported one never gets here (see _era).
        if record is not None:
            record.protocol_version = claims.version
            record.client_name, record.client_version = claims.client_name, claims.client_version
        ctx = CallContext(era=HANDSHAKE, version=claims.version, session_nonce=claims.nonce,
                          cancel_tag=self._tag(method, _session_scope(claims.nonce), request_id), caller=caller,
                          record=record, busy=busy)
        return self._call(request_id, method, params, ctx)

    def _tag(self, method: str, scope: str, request_id: Any) -> str | None:
        if method != "tools/call" or self.tags is None:
            return None
        return self.tags.tag(scope, request_id)

    def _call(self, request_id: Any, method: str, params: Mapping[str, Any] | None, ctx: CallContext) -> Reply:
        tool = params.get("name") if method == "tools/call" and isinstance(params, Mapping) else None
        try:
            result = self.server.handle(method, params, ctx)
        except BusyError as exc:
            refused = _error(request_id, exc, era=ctx.era, method=method, version=ctx.version)
            return replace(refused, outcome="busy")
        except RpcError as exc:
            return _error(request_id, exc, era=ctx.era, method=method, version=ctx.version)
        except Exception:
            log.exception("unexpected error in %s", method)
            return _error(request_id, RpcError(INTERNAL_ERROR, "internal error; the server log has the details"),
                          era=ctx.era, method=method, version=ctx.version)
        outcome = None
        if method == "tools/call":
            outcome = ("busy" if ctx.busy is not None else "error") if result.get("isError") else "ok"
        return Reply(body={"jsonrpc": "2.0", "id": request_id, "result": result}, era=ctx.era, method=method,
                     version=ctx.version, tool=tool if isinstance(tool, str) else None, outcome=outcome)


def _session_scope(nonce: str) -> str:
    return f"session:{nonce}"


def _modern_scope(headers: RoutingHeaders) -> str:
    """The 2026-07-28 era has no session: a request belongs to the credential that sent it
    (every unauthenticated caller shares one scope)."""
    return f"caller:{headers.caller or 'anonymous'}"
