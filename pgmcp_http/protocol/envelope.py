"""The 2026-07-28 per-request envelope: ``params._meta`` and the routing headers that must agree.

Checks run in the order the specification's reference SDK runs them, so a
client hears about the first thing it got wrong: the envelope keys, then
header agreement (``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name``),
then whether the revision is one this server speaks.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp_types import CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY

from pgmcp_http.protocol.errors import HEADER_MISMATCH, INVALID_PARAMS, UNSUPPORTED_PROTOCOL_VERSION, RpcError
from pgmcp_http.protocol.versions import MODERN_VERSIONS

__all__ = ["NAME_BEARING", "RoutingHeaders", "ModernEnvelope", "decode_header_value", "read_envelope",
           "unsupported_version"]

NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_B64 = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$")


@dataclass(slots=True)
class RoutingHeaders:
    """The routing headers of one HTTP request, as plain data (names lower-cased)."""

    protocol_version: str | None = None
    method: str | None = None
    name: str | None = None
    session_id: str | None = None
    duplicated: str | None = None
    caller: str | None = None  # who authenticated (a credential's digest), for cancellation scopes


@dataclass(slots=True)
class ModernEnvelope:
    """A request whose envelope passed every check."""

    version: str
    client_info: Any
    client_capabilities: Any


def decode_header_value(value: str | None) -> str | None:
    """Undo the ``=?base64?...?=`` wrapping of a header value; None when it is malformed."""
    if value is None:
        return None
    match = _B64.fullmatch(value)
    if match is None:
        return value
    payload = match.group("payload")
    try:
        decoded = base64.b64decode(payload, validate=True)
        if base64.b64encode(decoded).decode("ascii") != payload:
            return None
        return decoded.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def unsupported_version(requested: str) -> RpcError:
    return RpcError(UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version",
                    {"supported": list(MODERN_VERSIONS), "requested": requested})


def read_envelope(method: str, params: Any, headers: RoutingHeaders) -> ModernEnvelope:
    """The validated envelope of a modern request, or the RpcError that rejects it."""
    if headers.duplicated is not None:
        raise RpcError(HEADER_MISMATCH, f"{headers.duplicated} header appears more than once")
    meta = params.get("_meta") if isinstance(params, Mapping) else None
    if not isinstance(meta, Mapping):
        raise RpcError(INVALID_PARAMS, "params._meta must be an object carrying the required "
                       f"{PROTOCOL_VERSION_META_KEY!r} and {CLIENT_CAPABILITIES_META_KEY!r} envelope keys")
    missing = [key for key in (PROTOCOL_VERSION_META_KEY, CLIENT_CAPABILITIES_META_KEY) if key not in meta]
    if missing:
        raise RpcError(INVALID_PARAMS, f"params._meta is missing the required envelope key(s): {', '.join(missing)}")
    version = meta[PROTOCOL_VERSION_META_KEY]
    if headers.protocol_version is None or headers.protocol_version != version:
        raise RpcError(HEADER_MISMATCH, "mcp-protocol-version header does not match the request envelope's "
                       "protocol version")
    if headers.method != method:
        raise RpcError(HEADER_MISMATCH, "mcp-method header does not match the request body's method")
    name_key = NAME_BEARING.get(method)
    if name_key is not None:
        body_value = params.get(name_key)
        if body_value is not None and decode_header_value(headers.name) != body_value:
            raise RpcError(HEADER_MISMATCH, f"mcp-name header does not match the request body's {name_key!r} "
                           "parameter")
    if not isinstance(version, str):
        raise RpcError(INVALID_PARAMS, "the protocol-version envelope value must be a string")
    if version not in MODERN_VERSIONS:
        raise unsupported_version(version)
    return ModernEnvelope(version=version, client_info=meta.get(CLIENT_INFO_META_KEY),
                          client_capabilities=meta[CLIENT_CAPABILITIES_META_KEY])
