"""OAuth access tokens from the configured issuers, checked the way RFC 9068 and the MCP spec ask.

Per token, before its signature is even looked at: no key or key URL of its
own (``jku``, ``x5u``, ``jwk``: keys come from the issuer's metadata only),
``alg`` from OAUTH_ALGORITHMS (never ``none``, never HMAC), ``typ`` from
OAUTH_TOKEN_TYPES (``at+jwt``, which keeps ID tokens out), ``iss`` exactly one
of OAUTH_ISSUERS (it picks the key set). Then the signature, and ``aud``,
which must contain OAUTH_RESOURCE (or one of OAUTH_AUDIENCES): a token with no
audience, or another service's, is refused however right the rest is, since
accepting it would let any service that receives a user's token replay it here.
``exp`` is required and ``nbf`` honoured, with :data:`LEEWAY_S` for clock skew.

A client sends the same token on every call until it expires, so each worker
remembers the callers of tokens it has verified (by the token's SHA-256, up to
:data:`MEMO_SIZE`) until their ``exp``, or until the issuer's key set changes:
an RS256 verification costs ~150 µs, a memo hit ~3 µs (bench/oauth.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from pgmcp_http.auth.claims import LEEWAY_S, ClaimRules, caller_from_claims
from pgmcp_http.auth.keysets import IssuerKeys, UnknownKey
from pgmcp_http.auth.tokens import credential_digest
from pgmcp_http.config import OAuthSettings
from pgmcp_http.identity import Caller, RolePolicy

__all__ = ["LEEWAY_S", "MEMO_SIZE", "AccessTokens", "TokenRefused", "granted_scopes", "token_client"]

MEMO_SIZE = 10_000
"""Verified tokens each worker remembers (the oldest is forgotten first)."""

_KEY_SOURCES = ("jku", "x5u", "jwk")


class TokenRefused(Exception):
    """The token is not valid here; the message is its ``error_description`` (never the token itself)."""


def granted_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """The scopes a token grants: RFC 9068's space-separated ``scope``, or the ``scp`` list or string some
    providers write instead."""
    value = claims.get("scope", claims.get("scp"))
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(item for item in value if isinstance(item, str))
    return frozenset()


def token_client(claims: Mapping[str, Any]) -> str | None:
    """The application the token was issued to: ``client_id`` (RFC 9068) or ``azp`` (OpenID)."""
    value = claims.get("client_id", claims.get("azp"))
    return value if isinstance(value, str) else None


class AccessTokens:
    """Checks JWT access tokens of the configured issuers and turns them into Callers."""

    def __init__(self, settings: OAuthSettings, keysets: Mapping[str, IssuerKeys], policy: RolePolicy,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.keysets = keysets
        self.policy = policy
        self.clock = clock
        self.rules = ClaimRules(settings.subject_claim, settings.role_claim, settings.allowed_roles)
        self._require = ["exp", "aud", "iss", settings.subject_claim]
        # token digest -> (caller, valid until, issuer, key-set generation it was verified under)
        self._memo: dict[bytes, tuple[Caller, float, str, int]] = {}
        self._memo_lock = threading.Lock()

    def issuer_of(self, token: str) -> str | None:
        """The ``iss`` a JWT claims, unchecked, when it is one of ours (None: not a JWT, or another issuer's)."""
        if token.count(".") != 2:
            return None
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        issuer = claims.get("iss")
        return issuer if isinstance(issuer, str) and issuer in self.keysets else None

    def remembered(self, digest: bytes) -> Caller | None:
        """The Caller of a token this worker verified before (by its :func:`credential_digest`), while its
        ``exp`` and the issuer's key set last; None otherwise (verify it with :meth:`caller`)."""
        known = self._memo.get(digest)
        if known is None:
            return None
        caller, until, issuer, generation = known
        if self.clock() < until and self.keysets[issuer].generation() == generation:
            return caller
        return None

    def caller(self, token: str, digest: bytes | None = None) -> Caller:
        """The Caller a valid access token stands for, verified now and remembered under ``digest`` (its
        :func:`credential_digest`, computed when not given); raises TokenRefused or KeysUnavailable."""
        header = _header(token)
        alg = self._algorithm(header)  # what the token says of its own signature, before any key is looked up
        issuer = self.issuer_of(token)
        if issuer is None:
            raise TokenRefused("the token's issuer is not one this server trusts (OAUTH_ISSUERS)")
        generation = self.keysets[issuer].generation()
        claims = self._verified(token, issuer, header, alg)
        caller = self.caller_from(claims)
        with self._memo_lock:
            if len(self._memo) >= MEMO_SIZE:
                self._memo.pop(next(iter(self._memo)))
            self._memo[digest or credential_digest(token)] = (caller, float(claims["exp"]) + LEEWAY_S, issuer,
                                                              generation)
        return caller

    def caller_from(self, claims: Mapping[str, Any]) -> Caller:
        """The Caller of validated claims (from a JWT, or an introspection answer); raises TokenRefused when
        they name no usable subject."""
        caller = caller_from_claims(claims, self.rules, self.policy, issuer=claims["iss"],
                                    client_id=token_client(claims), scopes=granted_scopes(claims))
        if caller is None:
            raise TokenRefused(f"the token's {self.rules.subject_claim} claim is not a usable subject")
        return caller

    def _verified(self, token: str, issuer: str, header: Mapping[str, Any], alg: str) -> dict[str, Any]:
        """The validated claims of ``token``, which claims to come from ``issuer`` and to be signed with ``alg``;
        raises TokenRefused or KeysUnavailable."""
        kid = header.get("kid")
        try:
            key = self.keysets[issuer].key(kid if isinstance(kid, str) else None, alg)
        except UnknownKey as exc:
            raise TokenRefused(str(exc)) from None
        try:
            return jwt.decode(token, key.key, algorithms=[alg], audience=list(self.settings.accepted_audiences),
                              issuer=issuer, leeway=LEEWAY_S, options={"require": self._require})
        except jwt.ExpiredSignatureError:
            raise TokenRefused("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRefused("the token is not valid yet (nbf or iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise TokenRefused("the token was issued for another resource; ask for one with resource="
                               f"{self.settings.resource}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRefused(f"the token has no {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise TokenRefused("the token's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise TokenRefused(f"the token is not valid: {type(exc).__name__}") from None

    def _algorithm(self, header: Mapping[str, Any]) -> str:
        for name in _KEY_SOURCES:
            if name in header:
                raise TokenRefused(f"the token names its own key ({name}); keys come only from the issuer's metadata")
        # The header is the token's to choose: refusals name what is accepted, never echo what was sent.
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.settings.algorithms:
            raise TokenRefused("the token's signature algorithm is not one of "
                               f"{', '.join(self.settings.algorithms)} (OAUTH_ALGORITHMS)")
        types = self.settings.token_types
        typ = header.get("typ")
        if types is not None and (not isinstance(typ, str) or typ.lower() not in types):
            raise TokenRefused(f"the token is not an access token (its typ is not {types[0]}); an ID token cannot "
                               "be used here")
        return alg


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRefused("the token is not a well-formed JWT") from None
