"""The Observability group's checked values: the metrics token and directory, and whether tracing is on."""

from __future__ import annotations

import os
from pathlib import Path

from pgmcp_http.config.reader import ConfigError, Reader

__all__ = ["LOG_LEVELS", "metrics_dir", "metrics_token", "tracing"]

LOG_LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "warning": "WARNING",
              "error": "ERROR", "critical": "CRITICAL"}


def metrics_token(reader: Reader) -> str | None:
    """METRICS_TOKEN (or its file): long and plain enough to be a bearer token a scraper sends."""
    token = reader.secret("METRICS_TOKEN")
    if token is not None and (len(token) < 16 or not token.isprintable() or " " in token):
        raise ConfigError("METRICS_TOKEN must be at least 16 printable characters without spaces; "
                          "generate one with `openssl rand -hex 32`")
    return token


def metrics_dir(reader: Reader) -> str | None:
    """PROMETHEUS_MULTIPROC_DIR: an existing directory this user can write, or None for a private one."""
    value = reader.raw("PROMETHEUS_MULTIPROC_DIR")
    if value is None:
        return None
    target = Path(value)
    if not target.is_dir():
        raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR={value}: no such directory; create an empty one that only "
                          "this container uses, or unset it to let the server make a private one")
    if not os.access(target, os.W_OK | os.X_OK):
        raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR={value}: the directory is not writable by this user")
    return value


def tracing(reader: Reader) -> bool:
    """Whether the OTEL_* variables ask for traces (OTLP over HTTP, the only exporter shipped)."""
    if reader.boolean("OTEL_SDK_DISABLED", False):
        return False
    exporter = (reader.raw("OTEL_TRACES_EXPORTER") or "").lower()
    if exporter not in ("", "otlp", "none"):
        raise ConfigError(f"OTEL_TRACES_EXPORTER={exporter!r}: this server ships the OTLP exporter only; use otlp "
                          "or none")
    protocol = reader.raw("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    endpoint = reader.raw("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or reader.raw("OTEL_EXPORTER_OTLP_ENDPOINT")
    enabled = exporter == "otlp" or (exporter == "" and endpoint is not None)
    if enabled and protocol != "http/protobuf":
        raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: this server exports over http/protobuf only "
                          "(the collector's port 4318)")
    return enabled
