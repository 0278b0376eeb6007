"""Self-verifying session ids: any worker of any replica accepts what another issued.

A handshake-era session id is a signed token, not a key into a table:
``v1.<payload>.<signature>`` where the payload (base64url JSON) carries the
negotiated revision, issue and expiry times, a random nonce and the client's
name and version (for the audit trail: later requests do not repeat them), and the
signature is HMAC-SHA256 under SESSION_SECRET. Replicas that share the secret
share the sessions; no sticky load balancing and no shared storage.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

__all__ = ["InvalidSession", "SessionClaims", "SessionCodec"]

_PREFIX = "v1"


class InvalidSession(Exception):
    """The id is forged, malformed or expired; the client must initialize again."""


@dataclass(frozen=True)
class SessionClaims:
    """What a valid session id says."""

    version: str
    issued_at: int
    expires_at: int
    nonce: str
    client_name: str | None = None
    client_version: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Issues and verifies session ids under one secret."""

    def __init__(self, secret: bytes, *, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes")
        self._secret = secret
        self._ttl_s = ttl_s
        self._clock = clock

    def _sign(self, message: str) -> str:
        return _b64(hmac.digest(self._secret, message.encode("ascii"), "sha256"))

    def issue(self, version: str, client: tuple[str | None, str | None] | None = None) -> str:
        """A new session id for a client that negotiated ``version`` (``client``: its name and version)."""
        now = int(self._clock())
        payload: dict[str, object] = {"v": version, "iat": now, "exp": now + self._ttl_s,
                                      "n": secrets.token_urlsafe(12)}
        if client is not None and (client[0] or client[1]):
            payload["c"] = [(client[0] or "")[:64], (client[1] or "")[:32]]
        body = f"{_PREFIX}.{_b64(orjson.dumps(payload))}"
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str) -> SessionClaims:
        """The claims of a genuine, unexpired id; InvalidSession otherwise."""
        if not token.isascii() or not token.isprintable():  # before any comparison: non-ASCII made them raise
            raise InvalidSession("malformed session id")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _PREFIX:
            raise InvalidSession("malformed session id")
        body = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._sign(body), parts[2]):
            raise InvalidSession("session id signature does not verify")
        try:
            payload = orjson.loads(_unb64(parts[1]))
            client = payload.get("c") or [None, None]
            claims = SessionClaims(version=str(payload["v"]), issued_at=int(payload["iat"]),
                                   expires_at=int(payload["exp"]), nonce=str(payload["n"]),
                                   client_name=client[0] or None, client_version=client[1] or None)
        except (ValueError, KeyError, TypeError):
            raise InvalidSession("malformed session id") from None
        if claims.expires_at <= self._clock():
            raise InvalidSession("session expired")
        return claims
