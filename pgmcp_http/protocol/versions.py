"""Protocol revisions this server speaks, and what each one defines."""

from __future__ import annotations

from mcp_types.version import (
    HANDSHAKE_PROTOCOL_VERSIONS,
    KNOWN_PROTOCOL_VERSIONS,
    LATEST_HANDSHAKE_VERSION,
    MODERN_PROTOCOL_VERSIONS,
)

__all__ = [
    "DEFAULT_HANDSHAKE_VERSION",
    "HANDSHAKE_VERSIONS",
    "LATEST_HANDSHAKE_VERSION",
    "MODERN_VERSIONS",
    "at_least",
    "negotiate",
]

HANDSHAKE_VERSIONS: tuple[str, ...] = tuple(HANDSHAKE_PROTOCOL_VERSIONS)
MODERN_VERSIONS: tuple[str, ...] = tuple(MODERN_PROTOCOL_VERSIONS)
DEFAULT_HANDSHAKE_VERSION = "2025-03-26"
"""What a handshake-era request without MCP-Protocol-Version is assumed to speak (transport spec)."""


def negotiate(requested: object) -> str:
    """The client's revision if we speak it in the handshake era, else our newest handshake revision."""
    if isinstance(requested, str) and requested in HANDSHAKE_VERSIONS:
        return requested
    return LATEST_HANDSHAKE_VERSION


def at_least(version: str, minimum: str) -> bool:
    """True when ``version`` is ``minimum`` or a newer revision."""
    if version not in KNOWN_PROTOCOL_VERSIONS:
        return False
    return KNOWN_PROTOCOL_VERSIONS.index(version) >= KNOWN_PROTOCOL_VERSIONS.index(minimum)
