"""Callers from bearer JWTs signed with the key of JWT_KEY_FILE (a key copied onto the server).

With JWT_KEY_FILE set, a bearer that is not one of the configured tokens is
tried as a JWT (PyJWT): signature under the configured key and algorithms,
``exp`` required and checked, ``aud`` must be JWT_AUDIENCE and, when set,
``iss`` JWT_ISSUER. The claims then mean what :mod:`pgmcp_http.auth.claims`
says. The token itself is never the subject and never logged. Tokens from an
identity provider whose keys rotate belong in OAUTH_ISSUERS instead
(:mod:`pgmcp_http.auth.access_tokens`).
"""

from __future__ import annotations

from typing import Any

import jwt

from pgmcp_http.auth.claims import LEEWAY_S, ClaimRules, caller_from_claims
from pgmcp_http.config import JwtSettings
from pgmcp_http.identity import Caller, RolePolicy

__all__ = ["JwtCallers"]


class JwtCallers:
    """Turns a presented bearer into a Caller when it is a valid JWT for this server."""

    def __init__(self, settings: JwtSettings, policy: RolePolicy) -> None:
        self.settings = settings
        self.policy = policy
        self.rules = ClaimRules(settings.subject_claim, settings.role_claim, settings.allowed_roles)

    def caller(self, token: str) -> Caller | None:
        """The Caller a valid JWT stands for, or None (not a JWT, bad signature, expired, wrong audience...)."""
        if token.count(".") != 2:
            return None
        settings = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token, settings.key, algorithms=list(settings.algorithms), audience=settings.audience,
                issuer=settings.issuer, leeway=LEEWAY_S,
                options={"require": ["exp", settings.subject_claim], "verify_iss": settings.issuer is not None})
        except jwt.PyJWTError:
            return None
        return caller_from_claims(claims, self.rules, self.policy)
