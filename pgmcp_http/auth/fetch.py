"""Small JSON documents from an identity provider: discovery, key sets, introspection answers.

Plain ``urllib`` with a short timeout, no redirects followed (a key set must
come from the URL the issuer's own metadata names, not wherever that URL
points next) and a size cap. Called with a worker thread waiting, which is
why the timeout is OAUTH_FETCH_TIMEOUT and not urllib's unbounded default.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import orjson

from pgmcp_http.config import LOOPBACK_NAMES

__all__ = ["MAX_DOCUMENT_BYTES", "FetchFailed", "JsonFetcher", "safe_url"]

MAX_DOCUMENT_BYTES = 1_048_576
"""Largest document read: key sets and metadata are a few kilobytes; a larger answer is not one of them."""


def safe_url(url: object) -> str | None:
    """``url`` when it is https (or http on loopback, for local runs), else None: an endpoint an issuer's
    metadata names (keys, introspection) is only used over TLS, and never with another scheme."""
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_NAMES):
        return url
    return None


class FetchFailed(Exception):
    """A document could not be had; the message names the URL and why (never a credential)."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class JsonFetcher:
    """GET or POST one URL and read a JSON object back."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_NoRedirects())

    def get(self, url: str) -> dict[str, Any]:
        """The JSON object at ``url``; raises FetchFailed."""
        return self._send(urllib.request.Request(url, headers={"Accept": "application/json"}))

    def post_form(self, url: str, form: bytes, headers: dict[str, str]) -> dict[str, Any]:
        """The JSON object answering a form posted to ``url`` (introspection); raises FetchFailed."""
        return self._send(urllib.request.Request(url, data=form, method="POST", headers={
            "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded", **headers}))

    def _send(self, request: urllib.request.Request) -> dict[str, Any]:
        url = request.full_url
        try:
            with self._opener.open(request, timeout=self.timeout_s) as answer:
                data = answer.read(MAX_DOCUMENT_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise FetchFailed(f"{url} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise FetchFailed(f"{url} could not be fetched: {reason}") from None
        if len(data) > MAX_DOCUMENT_BYTES:
            raise FetchFailed(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise FetchFailed(f"{url} did not send JSON") from None
        if not isinstance(document, dict):
            raise FetchFailed(f"{url} did not send a JSON object")
        return document
