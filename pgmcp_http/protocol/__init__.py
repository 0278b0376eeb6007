"""MCP without HTTP or SQL: revisions, sessions, the modern envelope, methods and result shapes."""

from pgmcp_http.protocol.dispatch import Dispatcher, Reply
from pgmcp_http.protocol.envelope import RoutingHeaders
from pgmcp_http.protocol.server import CallContext, McpServer, ServerIdentity, tool_entry, tool_result
from pgmcp_http.protocol.sessions import SessionCodec

__all__ = [
    "CallContext",
    "Dispatcher",
    "McpServer",
    "Reply",
    "RoutingHeaders",
    "ServerIdentity",
    "SessionCodec",
    "tool_entry",
    "tool_result",
]
