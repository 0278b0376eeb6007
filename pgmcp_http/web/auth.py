"""The gate (:mod:`pgmcp_http.auth.gate`) as HTTP: refusals as responses, and the scope check of a call.

``/mcp`` calls :func:`challenge_answer` and :func:`needed_scopes` itself (it is
plain WSGI); the REST routes use :func:`authorize` as a ``before_request`` hook.
Refusals carry ``Access-Control-Expose-Headers: WWW-Authenticate`` so that a
browser client may read where to sign in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, current_app, request

from pgmcp_http.auth.gate import Challenge, Gate
from pgmcp_http.runtime import Runtime
from pgmcp_http.web.exchange import current, note
from pgmcp_http.web.http import json_response

__all__ = ["GATE_KEY", "authorize", "challenge_headers", "needed_scopes", "scope_refusal"]

GATE_KEY = "pgmcp_gate"


def challenge_headers(challenge: Challenge) -> list[tuple[str, str]]:
    """The headers of a refusal, with the one that lets browsers read ``WWW-Authenticate``."""
    return [*challenge.headers, ("Access-Control-Expose-Headers", "WWW-Authenticate")]


def needed_scopes(gate: Gate, runtime: Runtime, message: Any) -> tuple[str, ...]:
    """The scopes one JSON-RPC message needs (empty without OAuth, or for a method touching no data)."""
    if gate.oauth is None or not isinstance(message, Mapping):
        return ()
    method = message.get("method")
    params = message.get("params")
    params = params if isinstance(params, Mapping) else {}
    tool = params.get("name") if method == "tools/call" else None
    arguments = params.get("arguments")
    writes = isinstance(tool, str) and isinstance(arguments, Mapping) and runtime.toolbox.writes(tool, arguments)
    return gate.oauth.scopes.needed(method if isinstance(method, str) else None,
                                    tool if isinstance(tool, str) else None, writes=writes)


def scope_refusal(gate: Gate, runtime: Runtime, message: Any) -> Challenge | None:
    """The 403 for a message the admitted caller's scopes do not cover, or None."""
    exchange = current()
    if gate.oauth is None or exchange is None or exchange.identity is None:
        return None
    needed = needed_scopes(gate, runtime, message)
    if not needed:
        return None
    request_id = message.get("id") if isinstance(message, Mapping) else None
    return gate.scope_refusal(exchange.identity, needed, request_id)


def authorize() -> Response | None:
    """``before_request`` for the protected Flask blueprints: None to go on, or the refusal to send.

    An accepted request records who it is on its :class:`~pgmcp_http.web.exchange.Exchange`:
    ``identity``, the :class:`~pgmcp_http.identity.Caller` its credential stands for, and
    ``caller``, a short digest of the credential (never the credential) so that it can cancel its
    own requests and only those.
    """
    gate: Gate = current_app.extensions[GATE_KEY]
    verdict = gate.admit(request.headers)
    if isinstance(verdict, Challenge):
        note(outcome="unauthorized" if verdict.status == 401 else "auth_unavailable")
        return json_response(verdict.body, verdict.status, dict(challenge_headers(verdict)))
    exchange = current()
    if exchange is not None:
        exchange.identity, exchange.caller = verdict.identity, verdict.caller
    return None
