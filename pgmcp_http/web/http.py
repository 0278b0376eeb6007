"""HTTP plumbing shared by the blueprints: JSON responses, the runtime, request facts."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, current_app

from pgmcp_http.config import LOOPBACK_NAMES, Settings
from pgmcp_http.fairshare import FairShare
from pgmcp_http.runtime import Runtime

__all__ = ["BODY_TOO_LARGE", "FAIR_SHARE_KEY", "MAX_JSON_DEPTH", "fair_share", "forbidden_host", "forbidden_origin",
           "json_response", "rebinding_refusal", "runtime", "secrets", "too_deep"]

FAIR_SHARE_KEY = "pgmcp.fair_share"


def runtime() -> Runtime:
    """The app's Runtime (see :mod:`pgmcp_http.runtime`)."""
    return current_app.extensions["pgmcp"]  # type: ignore[no-any-return]


def fair_share() -> FairShare:
    """The app's :class:`~pgmcp_http.fairshare.FairShare` (this worker's counters)."""
    return current_app.extensions[FAIR_SHARE_KEY]  # type: ignore[no-any-return]


def secrets() -> list[str]:
    """Values never to echo in a response or a log line (database password, session key, tokens)."""
    return runtime().settings.secret_values()


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response encoded once with orjson."""
    response = Response(orjson.dumps(payload), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


LOOPBACK_BINDS = LOOPBACK_NAMES
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


def forbidden_host(host: str | None, bind_host: str) -> bool:
    """True when the server listens on loopback only and ``Host`` names something else.

    A DNS-rebinding page makes a browser send ``Host: attacker.example`` to
    127.0.0.1; a server bound to loopback only ever has loopback names.
    """
    return bind_host in LOOPBACK_BINDS and not _loopback_name(host or "")


def _loopback_name(host: str) -> bool:
    """Whether ``host`` (``name``, ``name:port`` or ``[v6]:port``) names this machine."""
    name = host.strip().lower()
    bracket = name.find("]")
    hostname = name[:bracket + 1] if name.startswith("[") and bracket > 0 else name.rsplit(":", 1)[0]
    return hostname in LOOPBACK_HOSTS


MAX_JSON_DEPTH = 64
BODY_TOO_LARGE = "the request body is larger than MAX_REQUEST_BYTES allows"
"""Deepest nesting of arrays and objects a request may carry: no tool needs more, and deep nesting
costs every later step (validation, logging) recursion."""


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH, raw: bytes | None = None) -> bool:
    """Whether ``value`` nests arrays/objects more than ``limit`` levels deep (checked without recursion).

    ``raw``, the JSON text ``value`` was read from, settles it at once when it opens no more than
    ``limit`` arrays and objects in all (brackets inside strings only make that count higher).
    """
    if raw is not None and raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def rebinding_refusal(origin: str | None, host: str | None, settings: Settings) -> str | None:
    """Why a request's Origin or Host is refused (DNS-rebinding protection), or None; each route
    answers it in its own error shape with 403."""
    if forbidden_origin(origin, settings.allowed_origins, settings.host):
        return f"Origin {origin} is not allowed; the operator can add it to ALLOWED_ORIGINS"
    if forbidden_host(host, settings.host):
        return "this server listens on loopback only and answers loopback host names only (DNS-rebinding protection)"
    return None


def forbidden_origin(origin: str | None, allowed: tuple[str, ...], bind_host: str) -> bool:
    """True when a browser ``Origin`` is present and not allowed (DNS-rebinding protection).

    Allowed: the Origins in ALLOWED_ORIGINS and, while the server listens on
    loopback only, any loopback origin (``http://localhost:6274``,
    ``http://127.0.0.1:3401``...): a page served from this very machine, which is
    also what the MCP SDKs allow a local server by default. A rebinding page
    keeps its own, non-loopback Origin. Clients that are not browsers (SDKs, the
    federation) send no Origin and are not affected.
    """
    if origin is None:
        return False
    origin = origin.rstrip("/")
    if origin in allowed:
        return False
    return not (bind_host in LOOPBACK_BINDS and _loopback_origin(origin))


def _loopback_origin(origin: str) -> bool:
    """``http(s)://`` + a loopback host name, with or without a port, and nothing more."""
    scheme, sep, authority = origin.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not authority or "/" in authority or "@" in authority:
        return False
    return _loopback_name(authority)
