"""The Deployment group's checked values: registration with the TAS MCP Federation."""

from __future__ import annotations

import re

from pgmcp_http.config.reader import ConfigError, Reader
from pgmcp_http.config.urls import http_url

__all__ = ["federation"]

_SERVER_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def federation(reader: Reader) -> tuple[str | None, str | None, str]:
    """FEDERATION_URL, FEDERATION_ENDPOINT and FEDERATION_SERVER_ID, checked together."""
    url = http_url(reader, "FEDERATION_URL", example="http://tas-mcp-federation:8080", base_only=False)
    endpoint = http_url(reader, "FEDERATION_ENDPOINT", example="http://postgres-mcp-server:3401", base_only=True)
    server_id = reader.raw("FEDERATION_SERVER_ID") or "postgres-mcp-server"
    if not _SERVER_ID.match(server_id):
        raise ConfigError(f"FEDERATION_SERVER_ID={server_id!r} must be 1 to 128 of A-Z a-z 0-9 . _ -")
    if url is not None and endpoint is None:
        raise ConfigError("FEDERATION_URL is set but FEDERATION_ENDPOINT is not; set it to the base URL the "
                          "federation should call this server at, e.g. http://postgres-mcp-server:3401")
    return url, endpoint, server_id
