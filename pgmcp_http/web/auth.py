"""Who may call the tools: bearer tokens or an API-key header, checked in constant time.

``/mcp`` and ``/mcp/tools/*`` require one of ``AUTH_TOKENS`` when any is
configured, as ``Authorization: Bearer <token>`` or in the ``AUTH_HEADER``
header (``X-API-Key`` by default: what the TAS federation sends for
``api_key`` auth). Probes stay open; ``/metrics`` has its own token.

Each presented value is hashed and compared with every configured token's
hash by :func:`hmac.compare_digest`, with no early exit: the time taken does
not depend on how much of a token matches, nor on which token matched. A
token is never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from flask import Request, Response, current_app, g, request

from pgmcp_http.config import TokenEntry
from pgmcp_http.web.http import json_response, note, runtime
from pgmcp_http.web.identity import IDENTITIES_KEY, Identities
from pgmcp_http.web.jwt_callers import JWT_CALLERS_KEY, JwtCallers

__all__ = ["UNAUTHORIZED", "TokenSet", "authorize", "challenge"]

TOKENS_KEY = "pgmcp_tokens"

UNAUTHORIZED = -32001
"""JSON-RPC error code for a missing or wrong credential (server-defined range)."""


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


class TokenSet:
    """The accepted tokens, kept only as SHA-256 digests, each with the caller it stands for.

    Plain tokens (AUTH_TOKENS, or a plain AUTH_TOKENS_FILE) stand for a caller
    named after a short digest of the token, ``token:<12 hex digits>``; named
    entries of AUTH_TOKENS_FILE for their name. The token itself never names anyone.
    """

    def __init__(self, tokens: Iterable[str], entries: Iterable[TokenEntry] = ()) -> None:
        plain = [(_digest(token), (f"token:{_digest(token).hex()[:12]}", None)) for token in tokens]
        named = [(entry.sha256, (entry.name, entry.role)) for entry in entries]
        self._digests = tuple(digest for digest, _ in plain + named)
        self.callers: tuple[tuple[str, str | None], ...] = tuple(caller for _, caller in plain + named)
        """(subject, role) of each token, in the order :meth:`match` numbers them."""

    def __bool__(self) -> bool:
        return bool(self._digests)

    def match(self, presented: str) -> int:
        """The number of the token ``presented`` is, or -1; compares against all of them every time,
        without a branch on the result."""
        candidate = _digest(presented)
        found = 0
        for number, known in enumerate(self._digests, start=1):
            found += number * hmac.compare_digest(candidate, known)
        return found - 1

    def matches(self, presented: str) -> bool:
        """Whether ``presented`` is one of the tokens."""
        return self.match(presented) >= 0


def presented_credentials(req: Request, header: str) -> list[str]:
    """The values a request offers: the Bearer token and the API-key header, when present."""
    found: list[str] = []
    authorization = req.headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        found.append(value.strip())
    api_key = req.headers.get(header, "").strip()
    if api_key:
        found.append(api_key)
    return found


def challenge(req: Request, tokens: TokenSet, header: str) -> Response | None:
    """None when the request carries an accepted token; else the 401 to send."""
    offered = presented_credentials(req, header)
    accepted = False
    for value in offered:
        accepted |= tokens.matches(value)
    if accepted:
        return None
    if offered:
        message = "unauthorized: the token is not valid; check the token this server was given"
        www = 'Bearer realm="pgmcp-http", error="invalid_token"'
    else:
        message = f"unauthorized: send a token as `Authorization: Bearer <token>` or in the {header} header"
        www = 'Bearer realm="pgmcp-http"'
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": UNAUTHORIZED, "message": message}}
    return json_response(body, 401, {"WWW-Authenticate": www})


def authorize() -> Response | None:
    """``before_request`` for the protected blueprints: None to go on, or the 401 to send.

    An accepted request records who it is: ``g.identity``, the
    :class:`~pgmcp_http.identity.Caller` its token stands for (a configured
    token first, else a valid JWT when JWT_KEY_FILE is set; with auth off, the
    anonymous caller), and ``g.caller``, a short digest of its token (never
    the token) so that it can cancel its own requests and only those.
    """
    tokens: TokenSet = current_app.extensions[TOKENS_KEY]
    identities: Identities = current_app.extensions[IDENTITIES_KEY]
    jwts: JwtCallers | None = current_app.extensions.get(JWT_CALLERS_KEY)
    if not tokens and jwts is None:
        g.identity = identities.anonymous
        return None
    header = runtime().settings.auth_header
    refusal = challenge(request, tokens, header)
    if refusal is not None and jwts is not None:
        for value in presented_credentials(request, header):
            caller = jwts.caller(value)
            if caller is not None:
                g.caller = _digest(value).hex()[:16]
                g.identity = caller
                return None
    if refusal is not None:
        note(outcome="unauthorized")
        return refusal
    for value in presented_credentials(request, header):
        number = tokens.match(value)
        if number >= 0:
            g.caller = _digest(value).hex()[:16]
            g.identity = identities.caller(number)
            break
    return None
