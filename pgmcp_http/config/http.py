"""The HTTP group's checked values: the port, the session key and the browser Origins allowed."""

from __future__ import annotations

import functools
import secrets

from pgmcp_http.config.reader import ConfigError, Reader

__all__ = ["allowed_origins", "port", "session_secret"]


def port(reader: Reader) -> int:
    """PORT, or the design guide's HEALTH_PORT when PORT is unset."""
    name = "PORT" if reader.raw("PORT") is not None else "HEALTH_PORT"
    return reader.integer(name, 3401, minimum=1, maximum=65535)


def session_secret(reader: Reader) -> tuple[bytes, bool]:
    """SESSION_SECRET (or its file), and whether it was generated because none was given."""
    text = reader.secret("SESSION_SECRET")
    if text is not None and len(text) < 32:
        raise ConfigError("SESSION_SECRET is too short; use at least 32 random characters")
    return (text.encode(), False) if text is not None else (_container_secret(), True)


@functools.cache
def _container_secret() -> bytes:
    """One random session key per process tree (generated in the gunicorn master, inherited)."""
    return secrets.token_bytes(32)


def allowed_origins(reader: Reader) -> tuple[str, ...]:
    """ALLOWED_ORIGINS without trailing slashes, as browsers send them."""
    return tuple(o.strip().rstrip("/") for o in (reader.raw("ALLOWED_ORIGINS") or "").split(",") if o.strip())
