"""Who is asking: a caller's subject, the database role its SQL runs as, and why it may be refused.

A :class:`Caller` is decided once per HTTP request by the web layer (from the
token it presented, or ``anonymous`` when auth is off) and handed down,
explicitly, to every transaction opened for it. The role is resolved here,
from the token entry's own ``role`` or ``DEFAULT_ROLE``; with
``ROLE_REQUIRED=true`` a caller without one carries a refusal instead, which
the database layer raises before it opens anything (fail closed).

Imports nothing from the package, so the web, protocol, tool and database
layers can all share these values without depending on one another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["ANONYMOUS", "Caller", "RolePolicy"]

ANONYMOUS = "anonymous"
"""The subject of every request when no token is configured."""


@dataclass(frozen=True)
class Caller:
    """One caller: ``subject`` (never a token), the PostgreSQL ``role`` to act as (None: the login
    role), the claims PostgreSQL sees as ``pgmcp.claims``, and ``refusal`` when it may not run SQL.

    An OAuth caller also has the ``issuer`` its subject belongs to (a ``sub`` is unique only per issuer),
    the ``client_id`` of the application acting for it, and the ``scopes`` its token grants; ``scopes`` is
    None for every other caller, whom scopes do not limit."""

    subject: str
    role: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)
    refusal: str | None = None
    issuer: str | None = None
    client_id: str | None = None
    scopes: frozenset[str] | None = None

    @property
    def identifies(self) -> bool:
        """Whether its transactions must say who is asking (a role to switch to, or a subject other than
        anonymous). The anonymous caller on the login role adds nothing, so a server without tokens or roles
        sends PostgreSQL exactly the SQL it sent before callers had identities."""
        return self.role is not None or self.subject != ANONYMOUS

    @property
    def claims_json(self) -> str:
        """The claims as compact JSON (what ``current_setting('pgmcp.claims', true)::jsonb`` reads)."""
        return orjson.dumps(dict(self.claims), option=orjson.OPT_SORT_KEYS).decode("utf-8")


@dataclass(frozen=True)
class RolePolicy:
    """How a subject becomes a role: its own mapping first, then ``default_role``, else refusal when
    ``required``. ``mapped`` is True when any role is configured at all (the server then switches roles and
    refuses a superuser login role); ``roles`` lists every role configured."""

    default_role: str | None = None
    required: bool = False
    mapped: bool = False
    roles: tuple[str, ...] = ()

    def caller(self, subject: str, role: str | None = None, claims: Mapping[str, Any] | None = None, *,
               issuer: str | None = None, client_id: str | None = None,
               scopes: frozenset[str] | None = None) -> Caller:
        """The Caller for ``subject``; ``role`` is the one its token entry (or role claim) names, if any."""
        chosen = role or self.default_role
        base_claims: dict[str, Any] = {"sub": subject}
        if chosen:
            base_claims["role"] = chosen
        base_claims.update(claims or {})
        refusal = None
        if chosen is None and self.required:
            refusal = (f"caller {subject!r} has no database role: ROLE_REQUIRED=true and none is mapped to it (its "
                       "AUTH_TOKENS_FILE entry, its token's ROLE_CLAIM or DEFAULT_ROLE); ask the operator to map it "
                       "to a role")
        return Caller(subject=subject, role=chosen, claims=base_claims, refusal=refusal, issuer=issuer,
                      client_id=client_id, scopes=scopes)
