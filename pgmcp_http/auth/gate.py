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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, request

from pgmcp_http.config import TokenEntry
from pgmcp_http.identity import Caller
from pgmcp_http.web.exchange import current, note
from pgmcp_http.web.http import json_response
from pgmcp_http.web.identity import Identities
from pgmcp_http.web.jwt_callers import JwtCallers

__all__ = ["GATE_KEY", "UNAUTHORIZED", "Admission", "Challenge", "Gate", "TokenSet", "authorize"]

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


def presented_credentials(headers: Mapping[str, str], header: str) -> list[str]:
    """The values a request offers: the Bearer token and the API-key header, when present."""
    found: list[str] = []
    authorization = headers.get("Authorization") or ""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        found.append(value.strip())
    api_key = (headers.get(header) or "").strip()
    if api_key:
        found.append(api_key)
    return found


@dataclass(frozen=True)
class Admission:
    """An accepted request: who it is (``identity``) and a short digest of its credential (``caller``)."""

    identity: Caller
    caller: str | None = None


@dataclass(frozen=True)
class Challenge:
    """A refused request: the 401 body and its ``WWW-Authenticate`` header."""

    body: dict[str, Any]
    www_authenticate: str


class Gate:
    """Everything that decides whether a request may call the tools, built once per app."""

    def __init__(self, tokens: TokenSet, identities: Identities, jwts: JwtCallers | None, header: str) -> None:
        self.tokens = tokens
        self.identities = identities
        self.jwts = jwts
        self.header = header

    def admit(self, headers: Mapping[str, str]) -> Admission | Challenge:
        """The caller a request's credential stands for (a configured token first, else a valid JWT when
        JWT_KEY_FILE is set; with auth off, the anonymous caller), or the 401 to send."""
        tokens, jwts = self.tokens, self.jwts
        if not tokens and jwts is None:
            return Admission(self.identities.anonymous)
        offered = presented_credentials(headers, self.header)
        numbers = [tokens.match(value) for value in offered]  # every value compared, whatever the first gives
        for value, number in zip(offered, numbers, strict=True):
            if number >= 0:
                return Admission(self.identities.caller(number), _digest(value).hex()[:16])
        if jwts is not None:
            for value in offered:
                caller = jwts.caller(value)
                if caller is not None:
                    return Admission(caller, _digest(value).hex()[:16])
        return _challenge(offered, self.header)


def _challenge(offered: list[str], header: str) -> Challenge:
    if offered:
        message = "unauthorized: the token is not valid; check the token this server was given"
        www = 'Bearer realm="pgmcp-http", error="invalid_token"'
    else:
        message = f"unauthorized: send a token as `Authorization: Bearer <token>` or in the {header} header"
        www = 'Bearer realm="pgmcp-http"'
    return Challenge({"jsonrpc": "2.0", "id": None, "error": {"code": UNAUTHORIZED, "message": message}}, www)


GATE_KEY = "pgmcp_gate"


def authorize() -> Response | None:
    """``before_request`` for the protected Flask blueprints: None to go on, or the 401 to send.

    An accepted request records who it is on its :class:`~pgmcp_http.web.exchange.Exchange`:
    ``identity``, the :class:`~pgmcp_http.identity.Caller` its credential stands for, and
    ``caller``, a short digest of the credential (never the credential) so that it can cancel its
    own requests and only those.
    """
    gate: Gate = current_app.extensions[GATE_KEY]
    verdict = gate.admit(request.headers)
    if isinstance(verdict, Challenge):
        note(outcome="unauthorized")
        return json_response(verdict.body, 401, {"WWW-Authenticate": verdict.www_authenticate})
    exchange = current()
    if exchange is not None:
        exchange.identity, exchange.caller = verdict.identity, verdict.caller
    return None
