"""Opaque access tokens, checked at the issuer's introspection endpoint (RFC 7662).

Only when OAUTH_INTROSPECTION_CLIENT_ID is set, which needs a single issuer (the
client's secret is that issuer's, and a caller's token is never shown to
another): this server authenticates as that client, posts the token to the
issuer's ``introspection_endpoint`` (https, from its metadata), and accepts it
when the answer is ``active: true`` with our resource in ``aud`` (an answer
without an audience is refused like a JWT without one), an ``iss`` that is
that issuer when it names one, and an ``exp`` still ahead. An answer without
``sub`` is a client acting for itself (client credentials), whose subject is
its ``client_id``, as in JWT access tokens; one that names a ``username`` but
no ``sub`` is refused. Answers are kept for :data:`CACHE_S` seconds at most
(never past ``exp``), refusals for :data:`REFUSAL_CACHE_S`, keyed by the token's
SHA-256 so the token itself is not held: a busy caller costs the issuer one
request per minute, not one per call."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from pgmcp_http.auth.access_tokens import TokenRefused
from pgmcp_http.auth.fetch import FetchFailed, JsonFetcher, safe_url
from pgmcp_http.auth.keysets import IssuerKeys, KeysUnavailable
from pgmcp_http.auth.tokens import credential_digest
from pgmcp_http.config import OAuthSettings

__all__ = ["CACHE_S", "REFUSAL_CACHE_S", "Introspector"]

CACHE_S = 60.0
"""Longest an active answer is trusted (a token revoked at the issuer stops working within this)."""
REFUSAL_CACHE_S = 5.0
"""How long a refusal is remembered, so a client retrying a dead token does not flood the issuer."""
MAX_ENTRIES = 10_000
"""Answers each worker remembers (the oldest is forgotten first)."""


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
        """The claims, or why the token is refused; KeysUnavailable when the issuer could not be asked."""
        ((issuer, keys),) = self.keysets.items()  # one issuer: checked at start-up
        try:
            endpoint = safe_url(keys.metadata().get("introspection_endpoint"))
            if endpoint is None:
                return f"{issuer} names no https introspection_endpoint, so opaque tokens cannot be checked"
            answer = self.fetcher.post_form(endpoint, urlencode({"token": token,
                                                                 "token_type_hint": "access_token"}).encode(),
                                            {"Authorization": self._authorization})
        except FetchFailed as exc:
            raise KeysUnavailable(f"the introspection endpoint of {issuer} could not be reached: {exc}") from None
        if answer.get("active") is not True:
            return "the token is not active (expired, revoked or unknown to the issuer)"
        return self.judge(answer, issuer)

    def judge(self, answer: dict[str, Any], issuer: str) -> dict[str, Any] | str:
        """The claims of an active introspection answer from ``issuer``, or why it does not admit a caller."""
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
        if self.settings.subject_claim not in claims:
            if "username" in claims or not isinstance(claims.get("client_id"), str):
                return f"the introspection answer names no {self.settings.subject_claim}"
            claims[self.settings.subject_claim] = claims["client_id"]  # a client acting for itself
        return claims
