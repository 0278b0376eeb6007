"""``WWW-Authenticate`` challenges (RFC 6750 §3, as the MCP authorization spec uses them).

The MCP SDK finds each parameter by the first ``name=`` it meets, so the real
parameters come first and the free text last; ``error_description`` may hold
neither ``"`` nor ``\\``. A request with no credential gets no ``error`` code
at all (RFC 6750 §3.1), only where to sign in and which scopes to ask for.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["bearer_challenge", "realm_challenge"]

REALM = "pgmcp-http"


def _quoted(value: str) -> str:
    return '"' + "".join(char for char in value if char not in '"\\' and char.isprintable()) + '"'


def bearer_challenge(*, resource_metadata: str, scopes: Iterable[str], error: str | None = None,
                     description: str | None = None) -> str:
    """The challenge of an OAuth-protected server: the metadata URL and scopes, then the error if any."""
    parts = [f"resource_metadata={_quoted(resource_metadata)}"]
    scope = " ".join(scopes)
    if scope:
        parts.append(f"scope={_quoted(scope)}")
    if error is not None:
        parts.append(f"error={_quoted(error)}")
        if description:
            parts.append(f"error_description={_quoted(description)}")
    return "Bearer " + ", ".join(parts)


def realm_challenge(*, error: str | None = None) -> str:
    """The challenge of a server that accepts only configured tokens (nothing to discover)."""
    return f"Bearer realm={_quoted(REALM)}" + (f", error={_quoted(error)}" if error else "")
