"""MCP methods: what each request does, independent of HTTP and of the era that carried it.

A method handler receives validated params and a :class:`CallContext` and
returns a result dict; :func:`~pgmcp_http.protocol.shapes.shape_result` then
makes it exactly what the negotiated revision defines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from mcp_types import methods as wire
from pydantic import ValidationError

from pgmcp_http.callrecord import CallRecord
from pgmcp_http.errors import ForbiddenError, NotFoundError, UnavailableError
from pgmcp_http.fairshare import SHARED_METHODS
from pgmcp_http.identity import Caller
from pgmcp_http.protocol import wire_check
from pgmcp_http.protocol.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    RESOURCE_NOT_FOUND,
    RpcError,
)
from pgmcp_http.protocol.providers import (
    CompletionProvider,
    PromptProvider,
    ResourceProvider,
    ToolDescription,
    ToolProvider,
    ToolResult,
)
from pgmcp_http.protocol.shapes import shape_result
from pgmcp_http.protocol.versions import MODERN_VERSIONS, at_least, negotiate

__all__ = ["BusyError", "CallContext", "McpServer", "ServerIdentity"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CallContext:
    """Who is calling, in which era and revision; ``cancel_tag`` names this request for cancellation,
    ``caller`` is whose role its SQL runs as, ``record`` collects what the audit trail says of it; ``busy``,
    when the web layer found the caller over its fair share, is what to answer instead of running the call."""

    era: str
    version: str
    session_nonce: str | None = None
    client_info: Any = None
    cancel_tag: str | None = None
    caller: Caller | None = None
    record: CallRecord | None = None
    busy: str | None = None


@dataclass(frozen=True)
class ServerIdentity:
    name: str
    title: str
    version: str
    instructions: str

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "version": self.version}


Handler = Callable[[dict[str, Any], CallContext], dict[str, Any]]


class BusyError(RpcError):
    """A ``resources/read`` refused for its caller's fair share (the web layer counts it apart)."""


class McpServer:
    """The method table of this server and the handlers behind it."""

    def __init__(self, *, identity: ServerIdentity, tools: ToolProvider, resources: ResourceProvider,
                 prompts: PromptProvider, completions: CompletionProvider) -> None:
        self.identity = identity
        self.tools = tools
        self.resources = resources
        self.prompts = prompts
        self.completions = completions
        self._handlers: dict[str, Handler] = {
            "ping": self._ping,
            "server/discover": self._discover,
            "tools/list": self._tools_list,
            "tools/call": self._tools_call,
            "resources/list": self._resources_list,
            "resources/templates/list": self._resource_templates,
            "resources/read": self._resources_read,
            "prompts/list": self._prompts_list,
            "prompts/get": self._prompts_get,
            "completion/complete": self._complete,
        }

    # -- entry points ------------------------------------------------------

    def capabilities(self) -> dict[str, Any]:
        return {"tools": {"listChanged": False}, "resources": {"subscribe": False, "listChanged": False},
                "prompts": {"listChanged": False}, "completions": {}}

    def initialize(self, params: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
        """Answer ``initialize``: the negotiated revision and its result."""
        requested = (params or {}).get("protocolVersion")
        version = negotiate(requested)
        _validate("initialize", version, params)
        result = {
            "protocolVersion": version,
            "capabilities": self.capabilities(),
            "serverInfo": self.identity.info(),
            "instructions": self.identity.instructions,
        }
        return shape_result("initialize", version, result, server_info=self.identity.info()), version

    def handle(self, method: str, params: Mapping[str, Any] | None, ctx: CallContext) -> dict[str, Any]:
        """Run ``method`` for ``ctx``; RpcError for anything the caller must fix."""
        _validate(method, ctx.version, params)
        handler = self._handlers.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}", method)
        if ctx.busy is not None and method in SHARED_METHODS:
            return self._busy(method, ctx.busy, ctx)
        result = handler(dict(params or {}), ctx)
        return shape_result(method, ctx.version, result, server_info=self.identity.info())

    def _busy(self, method: str, message: str, ctx: CallContext) -> dict[str, Any]:
        """The answer to a call refused for its caller's fair share: an ``isError`` result for a tool, an
        error for a resource (which has no error result); nothing runs."""
        if method != "tools/call":
            raise BusyError(INTERNAL_ERROR, message)
        result = {"content": [{"type": "text", "text": message}], "isError": True}
        return shape_result(method, ctx.version, result, server_info=self.identity.info())

    # -- handlers ----------------------------------------------------------

    def _ping(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        return {}

    def _discover(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        return {
            "supportedVersions": list(MODERN_VERSIONS),
            "capabilities": self.capabilities(),
            "serverInfo": self.identity.info(),
            "instructions": self.identity.instructions,
        }

    def _tools_list(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        return {"tools": [tool_entry(spec) for spec in self.tools.specs()]}

    def _tools_call(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        name = params["name"]
        arguments = params.get("arguments") or {}
        try:
            outcome = self.tools.call(name, arguments, tag=ctx.cancel_tag, caller=ctx.caller, record=ctx.record)
        except NotFoundError as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from None
        return tool_result(outcome, structured=at_least(ctx.version, "2025-06-18"))

    def _resources_list(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        cursor = params.get("cursor")
        try:
            resources, next_cursor = self.resources.list(cursor, caller=ctx.caller)
        except ValueError as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from None
        except ForbiddenError as exc:
            raise RpcError(INVALID_REQUEST, str(exc)) from None
        except UnavailableError as exc:
            raise RpcError(INTERNAL_ERROR, str(exc)) from None
        result: dict[str, Any] = {"resources": resources}
        if next_cursor is not None:
            result["nextCursor"] = next_cursor
        return result

    def _resource_templates(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        return {"resourceTemplates": self.resources.templates()}

    def _resources_read(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        uri = params["uri"]
        try:
            contents = self.resources.read(uri, caller=ctx.caller)
        except NotFoundError as exc:
            raise RpcError(RESOURCE_NOT_FOUND, str(exc), {"uri": uri}) from None
        except ForbiddenError as exc:
            if ctx.record is not None:
                ctx.record.outcome = "refused"
            raise RpcError(INVALID_REQUEST, str(exc)) from None
        except UnavailableError as exc:
            raise RpcError(INTERNAL_ERROR, str(exc)) from None
        return {"contents": contents}


    def _prompts_list(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        return {"prompts": self.prompts.list()}

    def _prompts_get(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        try:
            return self.prompts.get(params["name"], params.get("arguments"))
        except ValueError as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from None

    def _complete(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        argument = params["argument"]
        context = (params.get("context") or {}).get("arguments")
        try:
            completion = self.completions.complete(params["ref"], argument["name"], argument["value"], context,
                                                   caller=ctx.caller)
        except NotFoundError as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from None
        except ForbiddenError as exc:
            raise RpcError(INVALID_REQUEST, str(exc)) from None
        except UnavailableError as exc:
            raise RpcError(INTERNAL_ERROR, str(exc)) from None
        return {"completion": completion}


def _validate(method: str, version: str, params: Mapping[str, Any] | None) -> None:
    """Check ``params`` against the revision's schema; unknown methods are -32601."""
    if method not in wire.SPEC_CLIENT_METHODS:
        raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}", method)
    try:
        wire_check.validate_client_request(method, version, params)
    except KeyError:
        raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method} is not part of protocol revision {version}",
                       method) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if part not in (method,))
        raise RpcError(INVALID_PARAMS, f"Invalid params for {method}: {where or 'params'}: {first['msg']}") from None


def tool_entry(spec: ToolDescription) -> dict[str, Any]:
    """One ``tools/list`` entry (fields newer than the revision are removed later by shaping)."""
    entry: dict[str, Any] = {
        "name": spec.name,
        "title": spec.title,
        "description": spec.description,
        "inputSchema": spec.input_schema,
        "annotations": {"title": spec.title, **spec.annotations},
    }
    if spec.output_schema is not None:
        entry["outputSchema"] = spec.output_schema
    return entry


def tool_result(outcome: ToolResult, *, structured: bool) -> dict[str, Any]:
    """A CallToolResult: the tool's text (its data as JSON unless it rendered it, e.g. as CSV) for every
    client, plus structuredContent where the revision defines it."""
    if outcome.is_error:
        failed: dict[str, Any] = {"content": [{"type": "text", "text": outcome.error or "error"}], "isError": True}
        if outcome.meta:
            failed["_meta"] = outcome.meta
        return failed
    data = outcome.data or {}
    texts = outcome.texts or [orjson.dumps(data).decode("utf-8")]
    result: dict[str, Any] = {"content": [{"type": "text", "text": text} for text in texts], "isError": False}
    if structured:
        result["structuredContent"] = data
    if outcome.meta:
        result["_meta"] = outcome.meta
    return result
