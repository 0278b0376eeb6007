"""Static tokens: AUTH_TOKENS / AUTH_TOKENS_FILE, checked in constant time.

``/mcp`` and ``/mcp/tools/*`` accept one of them as ``Authorization: Bearer
<token>`` or in the ``AUTH_HEADER`` header (``X-API-Key`` by default: what the
TAS federation sends for ``api_key`` auth).

Each presented value is hashed and compared with every configured token's
hash by :func:`hmac.compare_digest`, with no early exit: the time taken does
not depend on how much of a token matches, nor on which token matched. A
token is never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

from pgmcp_http.config import TokenEntry

__all__ = ["TokenSet", "bearer_token", "credential_digest", "presented_credentials"]


def credential_digest(value: str) -> bytes:
    """SHA-256 of a presented value: what tokens are compared by, and (shortened) what names a credential
    in a log or a cancellation tag instead of the credential itself."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


class TokenSet:
    """The accepted tokens, kept only as SHA-256 digests, each with the caller it stands for.

    Plain tokens (AUTH_TOKENS, or a plain AUTH_TOKENS_FILE) stand for a caller
    named after a short digest of the token, ``token:<12 hex digits>``; named
    entries of AUTH_TOKENS_FILE for their name. The token itself never names anyone.
    """

    def __init__(self, tokens: Iterable[str], entries: Iterable[TokenEntry] = ()) -> None:
        plain = [(credential_digest(token), (f"token:{credential_digest(token).hex()[:12]}", None))
                 for token in tokens]
        named = [(entry.sha256, (entry.name, entry.role)) for entry in entries]
        self._digests = tuple(digest for digest, _ in plain + named)
        self.callers: tuple[tuple[str, str | None], ...] = tuple(caller for _, caller in plain + named)
        """(subject, role) of each token, in the order :meth:`match` numbers them."""

    def __bool__(self) -> bool:
        return bool(self._digests)

    def match(self, presented: str) -> int:
        """The number of the token ``presented`` is, or -1; compares against all of them every time,
        without a branch on the result."""
        return self.match_digest(credential_digest(presented))

    def match_digest(self, candidate: bytes) -> int:
        """:meth:`match` for a value already hashed with :func:`credential_digest` (the gate hashes each
        presented value once, for this comparison, the token memo and the caller's tag)."""
        found = 0
        for number, known in enumerate(self._digests, start=1):
            found += number * hmac.compare_digest(candidate, known)
        return found - 1

    def matches(self, presented: str) -> bool:
        """Whether ``presented`` is one of the tokens."""
        return self.match(presented) >= 0


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of ``Authorization: Bearer <token>``, when the request has one."""
    scheme, _, value = (headers.get("Authorization") or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def presented_credentials(headers: Mapping[str, str], header: str) -> list[str]:
    """The values a request offers: the Bearer token and the API-key header, when present."""
    found: list[str] = []
    bearer = bearer_token(headers)
    if bearer is not None:
        found.append(bearer)
    api_key = (headers.get(header) or "").strip()
    if api_key:
        found.append(api_key)
    return found


