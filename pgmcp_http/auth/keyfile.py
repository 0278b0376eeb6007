"""Callers from bearer JWTs: a validated token's claim names the subject, another may name the role.

With JWT_KEY_FILE set, a bearer that is not one of the configured tokens is
tried as a JWT (PyJWT): signature under the configured key and algorithms,
``exp`` required and checked, ``aud`` must be JWT_AUDIENCE and, when set,
``iss`` JWT_ISSUER. The subject is the SUBJECT_CLAIM (``sub``) and the
validated claims become ``pgmcp.claims``. A ROLE_CLAIM names the role; one
outside ALLOWED_ROLES is not an authentication failure but a refusal of every
database call (fail closed, and the audit trail says why), since the caller
is known. The token itself is never the subject and never logged.
"""

from __future__ import annotations

from typing import Any

import jwt

from pgmcp_http.config import JwtSettings
from pgmcp_http.identity import Caller, RolePolicy

__all__ = ["JwtCallers"]

LEEWAY_S = 30
"""Clock skew tolerated on ``exp``/``nbf``/``iat`` between the issuer and this server."""


class JwtCallers:
    """Turns a presented bearer into a Caller when it is a valid JWT for this server."""

    def __init__(self, settings: JwtSettings, policy: RolePolicy) -> None:
        self.settings = settings
        self.policy = policy

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
        subject = claims.get(settings.subject_claim)
        if not isinstance(subject, str) or not subject or len(subject) > 256 or not subject.isprintable():
            return None
        if settings.role_claim is None:
            return self.policy.caller(subject, None, claims)
        role = claims.get(settings.role_claim)
        if role is None:
            return self.policy.caller(subject, None, claims)
        if not isinstance(role, str) or role not in settings.allowed_roles:
            return Caller(subject=subject, role=None, claims=claims,
                          refusal=f"caller {subject!r} asks for database role {role!r} in its {settings.role_claim} "
                                  "claim, which is not in ALLOWED_ROLES; ask the operator to allow it or the "
                                  "issuer to grant another")
        return self.policy.caller(subject, role, claims)
