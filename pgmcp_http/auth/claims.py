"""What a validated token's claims mean: who the caller is and which PostgreSQL role it acts as.

Shared by JWT_KEY_FILE tokens and OAuth access tokens, so one ROLE_CLAIM and
one ALLOWED_ROLES rule both. A role claim outside ALLOWED_ROLES is not an
authentication failure but a refusal of every database call (fail closed, and
the audit trail says why), since the caller is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pgmcp_http.identity import Caller, RolePolicy

__all__ = ["LEEWAY_S", "ClaimRules", "caller_from_claims", "usable_subject"]

LEEWAY_S = 30
"""Clock skew tolerated on ``exp``/``nbf``/``iat`` between a token's issuer and this server."""


@dataclass(frozen=True)
class ClaimRules:
    """SUBJECT_CLAIM, ROLE_CLAIM and ALLOWED_ROLES."""

    subject_claim: str = "sub"
    role_claim: str | None = None
    allowed_roles: tuple[str, ...] = ()


def usable_subject(value: object) -> str | None:
    """A subject fit to appear in logs and in ``pgmcp.subject``: a printable string of 1 to 256 characters."""
    if not isinstance(value, str) or not value or len(value) > 256 or not value.isprintable():
        return None
    return value


def caller_from_claims(claims: Mapping[str, Any], rules: ClaimRules, policy: RolePolicy, *,
                       issuer: str | None = None, client_id: str | None = None,
                       scopes: frozenset[str] | None = None) -> Caller | None:
    """The Caller validated ``claims`` stand for, or None when they name no usable subject."""
    subject = usable_subject(claims.get(rules.subject_claim))
    if subject is None:
        return None
    extra = {"issuer": issuer, "client_id": client_id, "scopes": scopes}
    role = claims.get(rules.role_claim) if rules.role_claim is not None else None
    if role is None:
        return policy.caller(subject, None, claims, **extra)
    if not isinstance(role, str) or role not in rules.allowed_roles:
        return Caller(subject=subject, role=None, claims=dict(claims), **extra,
                      refusal=f"caller {subject!r} asks for database role {role!r} in its {rules.role_claim} "
                              "claim, which is not in ALLOWED_ROLES; ask the operator to allow it or the "
                              "issuer to grant another")
    return policy.caller(subject, role, claims, **extra)
