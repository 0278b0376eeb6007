"""URL-valued settings: https everywhere but loopback, no query or fragment where a URL is compared."""

from __future__ import annotations

from urllib.parse import urlsplit

from pgmcp_http.config.reader import ConfigError, Reader

__all__ = ["LOOPBACK_NAMES", "http_url", "web_url"]

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
"""Host names of this machine: plain http is accepted for them only, and binding to one keeps browsers out."""


def web_url(name: str, value: str, *, example: str) -> str:
    """An absolute https URL (http on loopback only: tests and local runs) without query or fragment."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise ConfigError(f"{name}: {value!r} is not an https URL; for example {example}")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_NAMES:
        raise ConfigError(f"{name}: {value!r} must use https (plain http is accepted on loopback only)")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ConfigError(f"{name}: {value!r} must not have a query or a fragment")
    return value


def http_url(reader: Reader, name: str, *, example: str, base_only: bool) -> str | None:
    """An http(s) URL without a trailing slash; ``base_only`` refuses a path (the federation appends its own)."""
    value = reader.raw(name)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}={value!r} is not an http(s) URL; for example {example}")
    if base_only and (parts.path.strip("/") or parts.query or parts.fragment):
        raise ConfigError(f"{name}={value!r} must be a base URL without a path (the federation appends "
                          f"/mcp/tools/call and the health check path itself); for example {example}")
    return value.rstrip("/")
