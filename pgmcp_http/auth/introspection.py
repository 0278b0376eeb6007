"""Opaque access tokens, checked at the issuer's introspection endpoint (RFC 7662).

Only when OAUTH_INTROSPECTION_CLIENT_ID is set: this server authenticates as
that client, posts the token to each configured issuer's
``introspection_endpoint`` in turn, and accepts it when one answers
``active: true`` with our resource in ``aud`` (an introspection answer without
an audience is refused like a JWT without one), an ``iss`` that is that issuer
when it names one, and an ``exp`` still ahead. Answers are kept for
:data:`CACHE_S` seconds at most (never past ``exp``), refusals for
:data:`REFUSAL_CACHE_S`, keyed by the token's SHA-256 so the token itself is
not held, so a busy caller costs the issuer one request per minute, not one per call.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from pgmcp_http.auth.access_tokens import TokenRefused
from pgmcp_http.auth.fetch import FetchFailed, JsonFetcher
from pgmcp_http.auth.keysets import IssuerKeys, KeysUnavailable
from pgmcp_http.auth.tokens import credential_digest
from pgmcp_http.config import OAuthSettings

__all__ = ["CACHE_S", "REFUSAL_CACHE_S", "Introspector"]

CACHE_S = 60.0
REFUSAL_CACHE_S = 5.0
MAX_ENTRIES = 10_000


class Introspector:
    """Asks the issuers about opaque tokens, with a short per-worker cache."""

    def __init__(self, settings: OAuthSettings, keysets: Mapping[str, IssuerKeys], fetcher: JsonFetcher,
                 clock: Callable[[], float] = time.time) -> None:
        client, secret = settings.introspection_client_id or "", settings.introspection_client_secret or ""
        self.settings = settings
        self.keysets = keysets
        self.fetcher = fetcher
        self.clock = clock
        pair = f"{quote(client, safe='')}:{quote(secret, safe='')}"  # RFC 6749 §2.3.1: form-encoded, then Basic
        self._authorization = "Basic " + base64.b64encode(pair.encode()).decode()
        self._cache: dict[bytes, tuple[float, dict[str, Any] | str]] = {}
        self._lock = threading.Lock()

    def claims(self, token: str) -> dict[str, Any]:
        """The introspected claims of an active token for this server; raises TokenRefused or KeysUnavailable."""
        digest = credential_digest(token)
        now = self.clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            answer = cached[1]
        else:
            answer = self._ask(token)
            until = now + (REFUSAL_CACHE_S if isinstance(answer, str) else CACHE_S)
            if not isinstance(answer, str) and isinstance(answer.get("exp"), (int, float)):
                until = min(until, float(answer["exp"]))
            with self._lock:
                if len(self._cache) >= MAX_ENTRIES:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[digest] = (until, answer)
        if isinstance(answer, str):
            raise TokenRefused(answer)
        return answer

    def _ask(self, token: str) -> dict[str, Any] | str:
        """The claims, or why the token is refused; KeysUnavailable when no issuer could be asked."""
        reasons: list[str] = []
        asked = 0
        for issuer, keys in self.keysets.items():
            try:
                endpoint = keys.metadata().get("introspection_endpoint")
                if not isinstance(endpoint, str):
                    continue
                answer = self.fetcher.post_form(endpoint, urlencode({"token": token,
                                                                     "token_type_hint": "access_token"}).encode(),
                                                {"Authorization": self._authorization})
            except FetchFailed as exc:
                reasons.append(str(exc))
                continue
            asked += 1
            if answer.get("active") is True:
                return self._check(answer, issuer)
        if asked == 0:
            raise KeysUnavailable("no issuer's introspection endpoint could be reached: " + "; ".join(reasons))
        return "the token is not active (expired, revoked or unknown to the issuers)"

    def _check(self, answer: dict[str, Any], issuer: str) -> dict[str, Any] | str:
        if answer.get("iss", issuer) != issuer:
            return "the introspected token names another issuer"
        audience = answer.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        if not set(audiences) & set(self.settings.accepted_audiences):
            return f"the token was not issued for this server; ask for one with resource={self.settings.resource}"
        expires = answer.get("exp")
        if isinstance(expires, (int, float)) and expires <= self.clock():
            return "the token has expired"
        claims = dict(answer)
        claims["iss"] = issuer
        if self.settings.subject_claim not in claims and isinstance(claims.get("client_id"), str):
            claims[self.settings.subject_claim] = claims["client_id"]  # a client acting for itself
        return claims
