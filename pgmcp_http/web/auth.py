"""The gate (:mod:`pgmcp_http.auth.gate`) as HTTP: refusals as responses, and the scope check of a call.

``/mcp`` calls :func:`challenge_headers` and :func:`scope_refusal` itself (it is
plain WSGI); the REST routes use :func:`authorize` as a ``before_request`` hook.
Refusals carry ``Access-Control-Expose-Headers: WWW-Authenticate`` so that a
browser client may read where to sign in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, current_app, request

from pgmcp_http.auth.gate import RETRY_AFTER_S, Challenge, Gate
from pgmcp_http.runtime import Runtime
from pgmcp_http.web.exchange import current, note
from pgmcp_http.web.http import json_response

__all__ = ["CHALLENGE_STATUS", "GATE_KEY", "authorize", "challenge_headers", "needed_scopes", "scope_refusal"]

GATE_KEY = "pgmcp_gate"
CHALLENGE_STATUS = {"unauthorized": 401, "forbidden": 403, "unavailable": 503}
"""The HTTP status of each kind of refusal: 401 sends a client to sign in, 403 to sign in with more scopes,
503 to wait (the identity provider's keys are out of reach, so signing in again would not help)."""


def challenge_headers(challenge: Challenge) -> list[tuple[str, str]]:
    """The headers of a refusal, with the one that lets browsers read ``WWW-Authenticate``."""
    headers = [("Access-Control-Expose-Headers", "WWW-Authenticate")]
    if challenge.www_authenticate is not None:
        headers.append(("WWW-Authenticate", challenge.www_authenticate))
    if challenge.kind == "unavailable":
        headers.append(("Retry-After", str(RETRY_AFTER_S)))
    return headers


def needed_scopes(gate: Gate, runtime: Runtime, message: Any) -> tuple[str, ...]:
    """The scopes one JSON-RPC message needs (empty without OAuth, or for a method touching no data)."""
    if gate.oauth is None or not isinstance(message, Mapping):
        return ()
    method = message.get("method")
    params = message.get("params")
    params = params if isinstance(params, Mapping) else {}
    tool = params.get("name") if method == "tools/call" else None
    arguments = params.get("arguments")
    # Classified as the call will run: omitted or null arguments run as {} (a fixed write statement still writes).
    arguments = arguments if isinstance(arguments, Mapping) else {}
    writes = isinstance(tool, str) and runtime.toolbox.writes(tool, arguments)
    return gate.oauth.scopes.needed(method if isinstance(method, str) else None,
                                    tool if isinstance(tool, str) else None, writes=writes)


def scope_refusal(gate: Gate, runtime: Runtime, message: Any) -> Challenge | None:
    """The 403 for a message the admitted caller's scopes do not cover, or None."""
    if gate.oauth is None:  # the common case, and on every call: nothing else to look at
        return None
    exchange = current()
    if exchange is None or exchange.identity is None:
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
        note(outcome="unauthorized" if verdict.kind == "unauthorized" else "auth_unavailable")
        return json_response(verdict.body, CHALLENGE_STATUS[verdict.kind], dict(challenge_headers(verdict)))
    exchange = current()
    if exchange is not None:
        exchange.identity, exchange.caller = verdict.identity, verdict.caller
    return None
