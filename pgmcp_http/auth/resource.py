"""This server as an OAuth protected resource: its metadata document (RFC 9728) and where it is served.

Everything is built from one setting, OAUTH_RESOURCE (the canonical URL users
type, e.g. ``https://db.example.com/mcp``), never from a request's Host
header: behind a load balancer the Host a request carries can be an internal
name, and a client compares the document's ``resource`` with the URL it was
given, byte for byte, before it trusts anything in it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pgmcp_http.config import OAuthSettings

__all__ = ["WELL_KNOWN", "metadata_document", "metadata_paths", "metadata_url"]

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def metadata_url(resource: str) -> str:
    """Where a client finds the metadata of ``resource``: the well-known suffix inserted between host and
    path (RFC 9728 §3.1), ``https://db.example.com/.well-known/oauth-protected-resource/mcp``."""
    parts = urlsplit(resource)
    path = parts.path if parts.path != "/" else ""
    return urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + path, "", ""))


def metadata_paths(resource: str) -> tuple[str, ...]:
    """The paths this server answers the metadata on: the path-inserted one of the resource, the one of
    ``/mcp`` (the resource may carry a proxy's prefix that is stripped before the request arrives) and the
    root one, which the SDKs and several hosts try last."""
    path = urlsplit(resource).path.rstrip("/")
    return tuple(dict.fromkeys((WELL_KNOWN + path, WELL_KNOWN + "/mcp", WELL_KNOWN)))


def metadata_document(settings: OAuthSettings) -> dict[str, Any]:
    """The Protected Resource Metadata: who issues tokens for this server and the scopes to ask for."""
    return {
        "resource": settings.resource,
        "authorization_servers": list(settings.issuers),
        "scopes_supported": list(settings.scopes),
        "bearer_methods_supported": ["header"],
        "resource_name": settings.resource_name,
    }
