"""Who is asking, per request: the :class:`~pgmcp_http.identity.Caller` behind the token presented.

Every caller the server can meet is known at start-up (one per configured
token, plus the anonymous one used when auth is off), so they are built once
here and a request only looks its caller up: no allocation and no role
resolution on the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence

from pgmcp_http.identity import ANONYMOUS, Caller, RolePolicy

__all__ = ["Identities"]


class Identities:
    """The callers of this server, numbered like the tokens of the TokenSet (see auth/tokens.py)."""

    def __init__(self, callers: Sequence[tuple[str, str | None]], policy: RolePolicy) -> None:
        self._callers = tuple(policy.caller(subject, role) for subject, role in callers)
        self.anonymous = policy.caller(ANONYMOUS)

    def caller(self, number: int) -> Caller:
        return self._callers[number]


