"""What one ``tools/call`` or ``resources/read`` did, filled in by the layer that learns each fact.

The web layer opens a :class:`CallRecord` per audited request and writes it
out once at the end (the audit trail); on the way the dispatcher notes the
method, revision and client, the toolbox notes the statement, the parameter
types, the rows and the precise outcome. Passing one plain object down keeps
the layers apart: none of them imports the audit or tracing code, and the
record holds no parameter or result *values*, only their counts and types.

Imports nothing from the package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CallRecord", "json_type", "scrub"]


@dataclass
class CallRecord:
    """Facts of one call; every field is optional until the layer that knows it fills it."""

    method: str
    tool: str | None = None
    resource: str | None = None
    protocol_version: str | None = None
    client_name: str | None = None
    client_version: str | None = None
    outcome: str | None = None
    reason: str | None = None
    sql: str | None = None
    param_types: list[str] | None = None
    rows: int | None = None
    truncated: bool | None = None
    node: str | None = None  # host:port of the PostgreSQL node that answered
    node_role: str | None = None  # primary or standby
    extra: dict[str, Any] = field(default_factory=dict)

    def note_client(self, info: Any) -> None:
        """Client name and version from an MCP ``clientInfo`` object (anything else is ignored)."""
        if isinstance(info, dict):
            name, version = info.get("name"), info.get("version")
            self.client_name = name[:128] if isinstance(name, str) else None
            self.client_version = version[:64] if isinstance(version, str) else None


def json_type(value: Any) -> str:
    """The JSON type of a parameter value, which is all an audit record may say about it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def scrub(text: str | None, values: list[Any]) -> str | None:
    """An error message fit for the audit trail: PostgreSQL's Detail and the ``near`` excerpt (which show
    bound values) cut off, and any bound value still quoted in it (``invalid input syntax for type
    integer: "abc"``) replaced by ``?``."""
    if text is None:
        return None
    for marker in (" Detail: ", " (near: "):
        cut = text.find(marker)
        if cut >= 0:
            sqlstate = text.rfind(" [SQLSTATE ")
            text = text[:cut] + (text[sqlstate:] if sqlstate > cut else "")
    for value in values:
        shown = value if isinstance(value, str) else None if isinstance(value, (dict, list)) else str(value)
        if shown and (len(shown) >= 3 or f'"{shown}"' in text):
            text = text.replace(f'"{shown}"', '"?"') if len(shown) < 3 else text.replace(shown, "?")
    return text
