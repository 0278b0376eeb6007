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
from typing import Any, Protocol

import orjson

__all__ = ["Canceller", "RequestTags"]


class Canceller(Protocol):
    def cancel(self, tag: str) -> int:
        """Stop the statement running under ``tag``; how many were stopped."""
        ...


class RequestTags:
    """Keyed BLAKE2b tags (a MAC) for (scope, request id) pairs, under the server secret.

    Every ``tools/call`` computes one, so it is BLAKE2b in keyed mode (one C call, no key schedule
    to set up) rather than HMAC-SHA256; replicas of one version agree on it, which is all it needs.
    """

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"pgmcp-cancel\x00" + secret).digest()

    def tag(self, scope: str, request_id: Any) -> str:
        message = scope.encode("utf-8") + b"\x00" + orjson.dumps(request_id)
        return hashlib.blake2b(message, key=self._key, digest_size=16).hexdigest()
