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


MAX_DESCRIPTION = 200


def _quoted(value: str, limit: int | None = None) -> str:
    """A quoted-string of RFC 6750's characters only (%x20-21 / %x23-5B / %x5D-7E): anything else, such as a
    non-ASCII ``kid`` a token carried into a refusal's description, would not even fit in an HTTP header."""
    kept = "".join(char for char in value if " " <= char <= "~" and char not in '"\\')
    return f'"{kept[:limit]}"'


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
            parts.append(f"error_description={_quoted(description, MAX_DESCRIPTION)}")
    return "Bearer " + ", ".join(parts)


def realm_challenge(*, error: str | None = None) -> str:
    """The challenge of a server that accepts only configured tokens (nothing to discover)."""
    return f"Bearer realm={_quoted(REALM)}" + (f", error={_quoted(error)}" if error else "")
