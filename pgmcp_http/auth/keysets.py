"""Each issuer's signing keys: found through its metadata, cached per worker, refreshed as it rotates them.

An issuer's key set is fetched from the ``jwks_uri`` of its RFC 8414 / OpenID
discovery document (or OAUTH_JWKS_URL), never from a URL a token names, and
kept for OAUTH_JWKS_CACHE seconds. A token signed with a ``kid`` the set does
not hold makes one early refetch (a rotation: the issuer published a new key),
at most once per cooldown, so a stream of forged ``kid`` values cannot turn
this server into a load generator against the issuer. When a refetch fails the
last good set stays in use; only when no set was ever obtained is the issuer
unavailable, which the gate answers with 503 (a 401 would send every client
back through a sign-in that cannot help).

Each gunicorn worker keeps its own cache (the first call after start fetches,
~1 ms on a local network); one fetch at a time per issuer, other threads wait
for it and use its result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt

from pgmcp_http.auth.fetch import FetchFailed, JsonFetcher, safe_url

__all__ = ["COOLDOWN_S", "IssuerKeys", "KeysUnavailable", "SigningKey", "UnknownKey", "discovery_urls"]

log = logging.getLogger(__name__)

COOLDOWN_S = 30.0
"""Shortest time between two fetches of one issuer's keys (PyJWT's and jose's figure); a short OAUTH_JWKS_CACHE
(tests) lowers it to a quarter of the cache's life."""

_FAMILIES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


class KeysUnavailable(Exception):
    """No key set of this issuer could be obtained yet: tokens cannot be checked (503, retry later)."""


class UnknownKey(Exception):
    """The token's key is not in the issuer's set, even after a refetch."""


@dataclass(frozen=True)
class SigningKey:
    """One verification key: the public key object, its ``kty`` and the ``alg`` the set pins it to, if any."""

    key: Any = field(repr=False)
    kty: str
    alg: str | None

    def fits(self, alg: str) -> bool:
        """Whether a token signed with ``alg`` may be checked with this key."""
        return (self.alg is None or self.alg == alg) and _FAMILIES.get(alg[:2]) == self.kty


@dataclass(frozen=True)
class _KeySet:
    """One fetch's keys: by ``kid``, and those without one (usable only when they are the single fit)."""

    named: dict[str, SigningKey]
    unnamed: tuple[SigningKey, ...]


def discovery_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may be, in the order the MCP SDK tries them: RFC 8414's path-inserted
    URL, OpenID's path-inserted one, then OpenID's path-appended one."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")

    def at(well_known: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, well_known, "", ""))

    urls = [at("/.well-known/oauth-authorization-server" + path), at("/.well-known/openid-configuration" + path)]
    if path:
        urls.append(at(path + "/.well-known/openid-configuration"))
    return urls


def _key_set(document: dict[str, Any], url: str) -> _KeySet:
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise FetchFailed(f"{url} is not a JWK set (no \"keys\" list)")
    named: dict[str, SigningKey] = {}
    unnamed: list[SigningKey] = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use") not in (None, "sig"):
            continue
        try:
            loaded = jwt.PyJWK(entry).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue  # a key type or curve this server cannot use; the others still count
        public = loaded.public_key() if hasattr(loaded, "public_key") else loaded  # a set holding private parts
        alg = entry.get("alg")
        key = SigningKey(public, str(entry.get("kty")), alg if isinstance(alg, str) else None)
        kid = entry.get("kid")
        if isinstance(kid, str):
            named[kid] = key
        else:
            unnamed.append(key)
    if not named and not unnamed:
        raise FetchFailed(f"{url} holds no signature key this server can use")
    return _KeySet(named, tuple(unnamed))


class IssuerKeys:
    """The discovery document and key set of one issuer, for one worker."""

    def __init__(self, issuer: str, fetcher: JsonFetcher, *, jwks_url: str | None = None, ttl_s: float = 600,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.issuer = issuer
        self.fetcher = fetcher
        self.jwks_url = jwks_url
        self.ttl_s = ttl_s
        self.cooldown_s = min(COOLDOWN_S, ttl_s / 4)
        self.clock = clock
        self._metadata: dict[str, Any] | None = None
        self._keys: _KeySet | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._generation = 0
        self._lock = threading.Lock()

    def generation(self) -> int:
        """A number that changes whenever a new key set is fetched (refreshing a stale one first): a token
        verified under an older generation must be verified again, since its key may have been removed."""
        self._current()
        return self._generation

    def key(self, kid: str | None, alg: str) -> SigningKey:
        """The key to check a token signed with ``alg`` under ``kid``; raises UnknownKey or KeysUnavailable."""
        keys = self._current()
        found = _pick(keys, kid, alg)
        if found is None:  # perhaps a rotation: wait for a fetch (once per cooldown) rather than refuse at once
            keys = self._refresh(keys, wait=True)
            found = _pick(keys, kid, alg)
        if found is None:
            # The kid is the token's to choose: never echoed (it would land in a header and in logs).
            raise UnknownKey(f"the token's key (kid) is not in the key set of {self.issuer}" if kid is not None
                             else f"the token names no key (kid) and {self.issuer} has no single {alg} key")
        return found

    def metadata(self) -> dict[str, Any]:
        """The issuer's discovery document (fetched once; raises FetchFailed until it is had)."""
        if self._metadata is None:
            self._metadata = self._discover()
        return self._metadata

    def _current(self) -> _KeySet:
        """The key set, fetched first when there is none yet; a stale one is refreshed by one thread while the
        others go on with it, so a slow issuer never stalls a whole worker."""
        keys = self._keys
        if keys is not None and self.clock() - self._fetched_at < self.ttl_s:
            return keys
        return self._refresh(keys, wait=keys is None)

    def _refresh(self, seen: _KeySet | None, *, wait: bool) -> _KeySet:
        """Fetch the set again unless another thread just did or the cooldown forbids it; keep the last good
        set when the fetch fails. Without ``wait``, a thread that finds a fetch under way keeps ``seen``."""
        if not self._lock.acquire(blocking=wait or seen is None):
            assert seen is not None
            return seen
        try:
            if self._keys is not seen and self._keys is not None:
                return self._keys  # fetched by another thread while this one waited
            now = self.clock()
            if self._attempted_at is not None and now - self._attempted_at < self.cooldown_s:
                if self._keys is None:
                    raise KeysUnavailable(f"the signing keys of {self.issuer} could not be fetched; retrying "
                                          f"within {self.cooldown_s:g} s")
                return self._keys
            self._attempted_at = now
            try:
                url = self.jwks_url or self._jwks_uri()
                self._keys = _key_set(self.fetcher.get(url), url)
                self._fetched_at = self.clock()
                self._generation += 1
            except FetchFailed as exc:
                if self._keys is None:
                    # Logged here, once per attempt (callers meanwhile get 503 saying the log has the reason).
                    log.warning("no signing keys of %s yet, tokens it issued get 503: %s", self.issuer, exc)
                    raise KeysUnavailable(f"the signing keys of {self.issuer} could not be fetched: {exc}") from None
                log.warning("keeping the last good signing keys of %s: %s", self.issuer, exc)
            return self._keys
        finally:
            self._lock.release()

    def _jwks_uri(self) -> str:
        metadata = self.metadata()
        url = safe_url(metadata.get("jwks_uri"))
        if url is None:
            raise FetchFailed(f"the metadata of {self.issuer} names no https jwks_uri")
        return url

    def _discover(self) -> dict[str, Any]:
        problems: list[str] = []
        for url in discovery_urls(self.issuer):
            try:
                document = self.fetcher.get(url)
            except FetchFailed as exc:
                problems.append(str(exc))
                continue
            if document.get("issuer") != self.issuer:
                problems.append(f"{url} names issuer {document.get('issuer')!r}, not {self.issuer!r} (set "
                                "OAUTH_ISSUERS to the issuer exactly as its metadata writes it)")
                continue
            return document
        raise FetchFailed("; ".join(problems))


def _pick(keys: _KeySet, kid: str | None, alg: str) -> SigningKey | None:
    if kid is not None:
        key = keys.named.get(kid)
        return key if key is not None and key.fits(alg) else None
    fitting = [key for key in (*keys.named.values(), *keys.unnamed) if key.fits(alg)]
    return fitting[0] if len(fitting) == 1 else None
