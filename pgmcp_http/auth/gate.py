"""The gate: the credential a request presents, in the order the kinds are tried, becomes a Caller or a refusal.

1. A configured static token (AUTH_TOKENS / AUTH_TOKENS_FILE), compared in constant time;
2. an OAuth access token of one of OAUTH_ISSUERS (a JWT naming that issuer), or, with introspection
   configured, an opaque token the issuer vouches for;
3. a JWT signed with JWT_KEY_FILE.

With none configured every request is the anonymous caller. A refusal is a
:class:`Challenge` of one of three kinds, which the web layer turns into a
status: ``unauthorized`` (401) with a ``WWW-Authenticate`` header telling an
OAuth client where to sign in (its resource metadata and the scopes to ask
for), ``error="invalid_token"`` when a credential was presented and is not
good; ``unavailable`` (503) when the issuer's keys cannot be had yet (signing in
again would not help); and, once a request is admitted and its call is known,
``forbidden`` (403) ``insufficient_scope`` naming every scope the call needs
(:meth:`Gate.scope_refusal`). OAuth access tokens are taken from
``Authorization: Bearer`` only (RFC 6750; the metadata says ``header``), never
from the API-key header. A token is never logged, echoed or forwarded.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pgmcp_http.auth.access_tokens import AccessTokens, TokenRefused
from pgmcp_http.auth.challenges import bearer_challenge, realm_challenge
from pgmcp_http.auth.fetch import JsonFetcher
from pgmcp_http.auth.identities import Identities
from pgmcp_http.auth.introspection import Introspector
from pgmcp_http.auth.keyfile import JwtCallers
from pgmcp_http.auth.keysets import IssuerKeys, KeysUnavailable
from pgmcp_http.auth.resource import metadata_url
from pgmcp_http.auth.scopes import ScopePolicy
from pgmcp_http.auth.tokens import TokenSet, bearer_token, credential_digest, presented_credentials
from pgmcp_http.config import OAuthSettings, Settings
from pgmcp_http.identity import Caller, RolePolicy

__all__ = ["FORBIDDEN", "RETRY_AFTER_S", "UNAUTHORIZED", "UNAVAILABLE", "Admission", "Challenge", "Gate",
           "OAuthCallers", "build_gate"]

# JSON-RPC error codes of refusals, in the server-defined range (MCP itself uses -32002 for "resource not found").
UNAUTHORIZED = -32001
"""A missing or wrong credential."""
FORBIDDEN = -32003
"""A call the credential's scopes do not cover."""
UNAVAILABLE = -32004
"""A credential that cannot be checked right now (the issuer's keys are out of reach)."""
RETRY_AFTER_S = 5
"""When to try again after an ``unavailable`` refusal: about the time a key-set fetch is retried."""


@dataclass(slots=True)
class Admission:
    """An accepted request: who it is (``identity``) and a short digest of its credential (``caller``)."""

    identity: Caller
    caller: str | None = None


@dataclass(frozen=True)
class Challenge:
    """A refused request: ``kind`` (``unauthorized``, ``forbidden`` or ``unavailable``), the JSON-RPC error
    body and the ``WWW-Authenticate`` challenge, when the refusal has one."""

    kind: str
    body: dict[str, Any]
    www_authenticate: str | None = None


def _error_body(code: int, message: str, request_id: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


class OAuthCallers:
    """Access tokens of the configured issuers (JWTs, and opaque ones when introspection is set up)."""

    def __init__(self, settings: OAuthSettings, tokens: AccessTokens, introspector: Introspector | None,
                 scopes: ScopePolicy) -> None:
        self.settings = settings
        self.tokens = tokens
        self.introspector = introspector
        self.scopes = scopes
        self.metadata_url = metadata_url(settings.resource)

    def caller(self, token: str, digest: bytes) -> Caller | None:
        """The Caller of a bearer token (``digest``: its :func:`credential_digest`) meant for these issuers (a
        JWT naming one of them, or with introspection set up any other opaque token), None when it is not
        one; raises TokenRefused or KeysUnavailable."""
        known = self.tokens.remembered(digest)
        if known is not None:
            return known
        if self.tokens.issuer_of(token) is not None:
            return self.tokens.caller(token, digest)
        if self.introspector is not None and token.count(".") != 2:
            claims = self.introspector.claims(token)
            return self.tokens.caller_from(claims)
        return None

    def challenge(self, *, error: str | None = None, description: str | None = None,
                  scopes: tuple[str, ...] | None = None) -> str:
        """This server's ``WWW-Authenticate``: its metadata URL, ``scopes`` (the baseline by default), the error."""
        return bearer_challenge(resource_metadata=self.metadata_url,
                                scopes=self.scopes.baseline if scopes is None else scopes,
                                error=error, description=description)


class Gate:
    """Everything that decides whether a request may call the tools, built once per app."""

    def __init__(self, tokens: TokenSet, identities: Identities, jwts: JwtCallers | None, header: str,
                 oauth: OAuthCallers | None = None) -> None:
        self.tokens = tokens
        self.identities = identities
        self.jwts = jwts
        self.header = header
        self.oauth = oauth

    def admit(self, headers: Mapping[str, str]) -> Admission | Challenge:
        """The caller a request's credential stands for, or the refusal to send."""
        tokens, jwts, oauth = self.tokens, self.jwts, self.oauth
        if not tokens and jwts is None and oauth is None:
            return Admission(self.identities.anonymous)
        offered = presented_credentials(headers, self.header)  # the bearer first, when there is one
        digests = [credential_digest(value) for value in offered]  # each value hashed once, for every use below
        numbers = [tokens.match_digest(digest) for digest in digests]  # all compared, whatever the first gives
        for digest, number in zip(digests, numbers, strict=True):
            if number >= 0:
                return Admission(self.identities.caller(number), digest.hex()[:16])
        reason = None
        bearer = bearer_token(headers)
        if oauth is not None and bearer is not None:
            try:
                caller = oauth.caller(bearer, digests[0])
            except TokenRefused as exc:
                reason = str(exc)
            except KeysUnavailable:
                return self._unavailable()
            else:
                if caller is not None:
                    return Admission(caller, digests[0].hex()[:16])
        for value, digest in zip(offered, digests, strict=True) if jwts is not None else ():
            caller = jwts.caller(value)
            if caller is not None:
                return Admission(caller, digest.hex()[:16])
        return self._unauthorized(bool(offered), reason)

    def scope_refusal(self, identity: Caller, needed: tuple[str, ...], request_id: Any = None) -> Challenge | None:
        """The 403 for a call whose ``needed`` scopes the caller's token does not grant, else None. Callers
        that are not OAuth callers (``scopes`` None) are not limited by scopes."""
        oauth = self.oauth
        if oauth is None or identity.scopes is None or not oauth.scopes.missing(identity.scopes, needed):
            return None
        wanted = oauth.scopes.challenge(needed)
        lacking = " ".join(scope for scope in needed if scope not in identity.scopes)
        description = f"this call needs the scope {lacking}; sign in again granting it"
        return Challenge("forbidden", _error_body(FORBIDDEN, f"forbidden: {description}", request_id),
                         oauth.challenge(error="insufficient_scope", description=description, scopes=wanted))

    def _unauthorized(self, presented: bool, reason: str | None) -> Challenge:
        oauth = self.oauth
        if presented:
            message = f"unauthorized: {reason}" if reason else \
                "unauthorized: the token is not valid; check the token this server was given"
            www = oauth.challenge(error="invalid_token", description=reason or "the token is not valid") \
                if oauth is not None else realm_challenge(error="invalid_token")
        elif oauth is not None:
            message = (f"unauthorized: sign in with OAuth (the authorization server is named at {oauth.metadata_url})"
                       f" or send a token as `Authorization: Bearer <token>`")
            www = oauth.challenge()
        else:
            message = f"unauthorized: send a token as `Authorization: Bearer <token>` or in the {self.header} header"
            www = realm_challenge()
        return Challenge("unauthorized", _error_body(UNAUTHORIZED, message), www)

    def _unavailable(self) -> Challenge:
        message = ("the identity provider's signing keys could not be fetched, so no token can be checked; retry "
                   f"in {RETRY_AFTER_S} s (the server log says why)")
        return Challenge("unavailable", _error_body(UNAVAILABLE, message))


def build_gate(settings: Settings, roles: RolePolicy, tools: Collection[str]) -> Gate:
    """The gate of a server configured by ``settings`` whose tools are named ``tools``."""
    tokens = TokenSet(settings.auth_tokens, settings.auth_entries)
    jwts = JwtCallers(settings.jwt, roles) if settings.jwt is not None else None
    oauth = _oauth_callers(settings.oauth, roles, tools) if settings.oauth is not None else None
    return Gate(tokens, Identities(tokens.callers, roles), jwts, settings.auth_header, oauth)


def _oauth_callers(settings: OAuthSettings, roles: RolePolicy, tools: Collection[str]) -> OAuthCallers:
    fetcher = JsonFetcher(settings.fetch_timeout_ms / 1000)
    keysets = {issuer: IssuerKeys(issuer, fetcher, jwks_url=settings.jwks_url, ttl_s=settings.jwks_cache_s)
               for issuer in settings.issuers}
    introspector = Introspector(settings, keysets, fetcher) if settings.introspection_client_id else None
    scopes = ScopePolicy(baseline=settings.scopes, tool_scopes=dict(settings.tool_scopes), tools=tools)
    return OAuthCallers(settings, AccessTokens(settings, keysets, roles), introspector, scopes)
