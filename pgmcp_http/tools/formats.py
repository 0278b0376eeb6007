"""The text a model reads for a row result: JSON objects, a Markdown table, CSV, or columns + arrays.

Only the text content changes; ``structuredContent`` stays the same typed
object whatever the format. Every format keeps values unambiguous:

- ``json`` (default): the payload as JSON, rows as objects.
- ``columns``: the payload as JSON with ``columns`` given once and ``rows`` as
  arrays in column order: no key repeated per row.
- ``table``: a Markdown table. An empty cell is NULL. A string is written as
  is unless it is empty, has leading or trailing spaces, starts with a double
  quote, or holds a newline, tab, carriage return, backslash or pipe: then it
  is written as a JSON string (``""`` is the empty string, ``"a\\nb"`` holds
  a newline); ``|`` is always escaped as ``\\|``.
- ``csv``: RFC 4180 with a header row. An empty unquoted field is NULL; the
  empty string is ``""``; fields with commas, quotes or line breaks are quoted.

In both, a value that is not a string in the JSON result (a number, a
boolean, an array) is written as its JSON text, and so is every value of a
``json`` or ``jsonb`` column, whatever it holds: JSON ``null`` is ``null``
(SQL NULL stays empty), the JSON string ``"[1,2]"`` keeps its quotes and the
array is ``[1,2]`` (psql writes the same, with its own spacing). Records and composite values are
PostgreSQL's text (``(1,"a b")``), like every other type the JSON result
gives as a string.

Truncation is never hidden inside the data: for ``table`` and ``csv`` the note
is a second text item; for ``json`` and ``columns`` it is in the payload.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

__all__ = ["DEFAULT_FORMAT", "FORMATS", "render"]

FORMATS = ("json", "table", "csv", "columns")
DEFAULT_FORMAT = "json"
_PLAIN_UNSAFE = set("\n\r\t\\|")
_JSON_TYPES = frozenset({"json", "jsonb"})
"""Column types whose every value is written as JSON text, so a JSON string, null or array keeps its kind."""


def render(payload: dict[str, Any], fmt: str) -> list[str]:
    """The text items for ``payload`` (a rows payload: columns, rows, row_count, truncated...)."""
    if fmt == "json":
        return [orjson.dumps(payload).decode("utf-8")]
    if fmt == "columns":
        return [orjson.dumps(_columns_form(payload)).decode("utf-8")]
    keys = [column.get("key", column["name"]) for column in payload["columns"]]
    names = [column["name"] for column in payload["columns"]]
    as_json = [column.get("type") in _JSON_TYPES for column in payload["columns"]]
    rows = [[row.get(key) for key in keys] for row in payload["rows"]]
    body = _markdown(names, rows, as_json) if fmt == "table" else _csv(names, rows, as_json)
    texts = [body]
    note = _note(payload)
    if note:
        texts.append(note)
    return texts


def _columns_form(payload: dict[str, Any]) -> dict[str, Any]:
    keys = [column.get("key", column["name"]) for column in payload["columns"]]
    form = {key: value for key, value in payload.items() if key != "rows"}
    form["rows"] = [[row.get(key) for key in keys] for row in payload["rows"]]
    return form


def _note(payload: dict[str, Any]) -> str | None:
    if payload.get("truncated"):
        return payload.get("note") or f"Truncated: only {payload['row_count']} rows are shown."
    if not payload["columns"] and payload.get("command"):
        return payload["command"]
    return None


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def _cell(value: Any, as_json: bool = False) -> str:
    """One Markdown table cell (see the module documentation for the rules)."""
    if value is None:
        return ""
    if isinstance(value, str) and not as_json:
        plain = (value and value == value.strip() and not value.startswith('"')
                 and not _PLAIN_UNSAFE.intersection(value))
        text = value if plain else _json_text(value)
    else:
        text = _json_text(value)
    return text.replace("|", "\\|")


def _markdown(names: Sequence[str], rows: Sequence[Sequence[Any]], as_json: Sequence[bool]) -> str:
    header = "| " + " | ".join(_cell(name) or '""' for name in names) + " |"
    rule = "|" + "|".join("---" for _ in names) + "|"
    lines = [header, rule] + ["| " + " | ".join(_cell(value, json) for value, json in zip(row, as_json, strict=True))
                              + " |" for row in rows]
    return "\n".join(lines) if names else "(no columns)"


def _field(value: Any, as_json: bool = False) -> str:
    """One CSV field: NULL is empty and unquoted, everything else is text that may need quoting."""
    if value is None:
        return ""
    text = value if isinstance(value, str) and not as_json else _json_text(value)
    if text == "" or any(char in text for char in ',"\r\n') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv(names: Sequence[str], rows: Sequence[Sequence[Any]], as_json: Sequence[bool]) -> str:
    lines = [",".join(_field(name) for name in names)]
    lines += [",".join(_field(value, json) for value, json in zip(row, as_json, strict=True)) for row in rows]
    return "\r\n".join(lines) + "\r\n"
