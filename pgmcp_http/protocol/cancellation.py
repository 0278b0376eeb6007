"""Naming a running request so that any worker of any replica can cancel it, and only its caller.

``notifications/cancelled`` may reach another worker, or another replica,
than the ``tools/call`` it names. Both sides derive the same tag from the
request id and the caller's scope (the session's secret nonce in the
handshake era; the authenticated credential in the 2026-07-28 era), keyed
with the server secret every replica shares. The tool's transaction carries
the tag (as its ``application_name``), so the canceller finds the backend in
``pg_stat_activity``. Another client cannot compute a tag for a request it
did not send.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Protocol

import orjson

__all__ = ["Canceller", "RequestTags"]


class Canceller(Protocol):
    def cancel(self, tag: str) -> int:
        """Stop the statement running under ``tag``; how many were stopped."""
        ...


class RequestTags:
    """HMAC tags for (scope, request id) pairs, under the server secret."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"pgmcp-cancel\x00" + secret).digest()

    def tag(self, scope: str, request_id: Any) -> str:
        message = scope.encode("utf-8") + b"\x00" + orjson.dumps(request_id)
        return hmac.digest(self._key, message, "sha256").hex()[:32]  # the same HMAC, in one C call
