"""What the protocol layer needs from tools and resources, as structural types.

The protocol layer never imports the tool or database code: the app hands it
objects that fit these shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from pgmcp_http.callrecord import CallRecord
from pgmcp_http.identity import Caller

__all__ = ["CompletionProvider", "PromptProvider", "ResourceProvider", "ToolDescription", "ToolProvider",
           "ToolResult"]


class ToolDescription(Protocol):
    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    annotations: dict[str, Any]


class ToolResult(Protocol):
    @property
    def is_error(self) -> bool: ...

    data: dict[str, Any] | None
    error: str | None
    outcome: str
    texts: list[str] | None  # the text content, when the tool rendered its data itself

    @property
    def meta(self) -> dict[str, Any] | None: ...  # the result's _meta (which database node answered)


class ToolProvider(Protocol):
    def specs(self) -> Sequence[ToolDescription]: ...

    def call(self, name: str, arguments: dict[str, Any], *, tag: str | None = None, caller: Caller | None = None,
             record: CallRecord | None = None) -> ToolResult:
        """Run a tool; raises NotFoundError for an unknown name. ``tag`` names the call for cancellation;
        its SQL runs as ``caller``'s role; ``record`` receives what the audit trail says of the call."""
        ...


class ResourceProvider(Protocol):
    def list(self, cursor: str | None, *, caller: Caller | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the resources ``caller`` may see and the cursor of the next (None at the end)."""
        ...

    def templates(self) -> list[dict[str, Any]]: ...

    def read(self, uri: str, *, caller: Caller | None = None) -> list[dict[str, Any]]:
        """The contents of ``uri`` as ``caller``'s role sees it; NotFoundError when unknown or hidden,
        ForbiddenError when the caller may not read the database at all."""
        ...


class PromptProvider(Protocol):
    def list(self) -> list[dict[str, Any]]: ...

    def get(self, name: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
        """A GetPromptResult; ValueError (bad arguments or unknown prompt) says why."""
        ...


class CompletionProvider(Protocol):
    def complete(self, ref: dict[str, Any], argument: str, value: str,
                 context: dict[str, str] | None, *, caller: Caller | None = None) -> dict[str, Any]:
        """The ``completion`` object; NotFoundError for an unknown reference or argument."""
        ...
