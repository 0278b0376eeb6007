"""``postgres://`` resources over the same catalog code the tools use.

- ``postgres://schema/{schema}``: the schema's tables, views and functions;
- ``postgres://table/{schema}/{table}``: what ``describe_table`` returns;
- ``postgres://function/{schema}/{name}``: every overload's signature and source.

Names are percent-encoded in URIs. Hidden schemas and blocked tables are
neither listed nor readable: reading one is "not found", like a missing one.
Every read runs as the caller's role, so with per-caller roles a caller sees
only what its role may use (see catalog/visibility.py).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote, unquote

import orjson

from pgmcp_http.catalog import (
    Visibility,
    describe_function,
    describe_relation,
    find_relation,
    list_functions,
    list_relations,
    list_schemas,
)
from pgmcp_http.catalog.describe import NotFound
from pgmcp_http.catalog.reading import catalog_transaction
from pgmcp_http.db import Database, Transaction
from pgmcp_http.errors import NotFoundError
from pgmcp_http.identity import Caller

__all__ = ["PAGE_SIZE", "Resources", "decode_cursor", "encode_cursor"]

PAGE_SIZE = 500
MIME = "application/json"

TEMPLATES: list[dict[str, Any]] = [
    {"uriTemplate": "postgres://schema/{schema}", "name": "schema", "title": "Schema",
     "description": "A schema's tables, views and functions.", "mimeType": MIME},
    {"uriTemplate": "postgres://table/{schema}/{table}", "name": "table", "title": "Table or view",
     "description": "Columns, keys, indexes, references and statistics of a table or view.", "mimeType": MIME},
    {"uriTemplate": "postgres://function/{schema}/{name}", "name": "function", "title": "Function",
     "description": "Signature, result, language, volatility and source of a function.", "mimeType": MIME},
]


class ResourceNotFound(NotFoundError):
    """Unknown, malformed or hidden URI."""

    def __init__(self, uri: str) -> None:
        super().__init__(f"resource not found: {uri}")


def _segment(name: str) -> str:
    return quote(name, safe="")


def encode_cursor(offset: int) -> str:
    """An opaque pagination cursor."""
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode("ascii")


def decode_cursor(cursor: str | None) -> int:
    """The offset in a cursor from :func:`encode_cursor`; ValueError for anything else."""
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
        offset = int(text[2:]) if text.startswith("o:") else -1
    except (ValueError, binascii.Error, UnicodeError):
        offset = -1
    if offset < 0:
        raise ValueError(f"invalid cursor {cursor!r}; pass the nextCursor of a previous page")
    return offset


class Resources:
    """Lists and reads the ``postgres://`` resources of one database."""

    def __init__(self, *, database: Callable[[], Database], visibility: Callable[[Transaction], Visibility]) -> None:
        self._database = database
        self.visibility = visibility  # what a transaction may show (views over blocked tables hidden too)

    def _transaction(self, caller: Caller | None) -> AbstractContextManager[Transaction]:
        return catalog_transaction(self._database, caller)

    def templates(self) -> list[dict[str, Any]]:
        return [dict(template) for template in TEMPLATES]

    def list(self, cursor: str | None, *, caller: Caller | None = None) -> tuple[list[dict[str, Any]], str | None]:
        offset = decode_cursor(cursor)
        with self._transaction(caller) as tx:
            entries = self._all(tx)
        page = entries[offset:offset + PAGE_SIZE]
        next_cursor = encode_cursor(offset + PAGE_SIZE) if offset + PAGE_SIZE < len(entries) else None
        return page, next_cursor

    def _all(self, tx: Transaction) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        visibility = self.visibility(tx)
        for schema in list_schemas(tx, visibility):
            entries.append({"uri": f"postgres://schema/{_segment(schema['name'])}", "name": schema["name"],
                            "title": f"Schema {schema['name']}", "mimeType": MIME,
                            **({"description": schema["comment"]} if schema["comment"] else {})})
        for rel in list_relations(tx, visibility):
            entries.append({"uri": f"postgres://table/{_segment(rel['schema'])}/{_segment(rel['name'])}",
                            "name": f"{rel['schema']}.{rel['name']}", "title": f"{rel['kind']} {rel['name']}",
                            "mimeType": MIME, **({"description": rel["comment"]} if rel["comment"] else {})})
        seen: set[tuple[str, str]] = set()
        for fn in list_functions(tx, visibility):
            key = (fn["schema"], fn["name"])
            if key in seen:
                continue
            seen.add(key)
            entries.append({"uri": f"postgres://function/{_segment(fn['schema'])}/{_segment(fn['name'])}",
                            "name": f"{fn['schema']}.{fn['name']}", "title": f"function {fn['name']}",
                            "mimeType": MIME, **({"description": fn["comment"]} if fn["comment"] else {})})
        return entries

    def read(self, uri: str, *, caller: Caller | None = None) -> list[dict[str, Any]]:
        kind, parts = self._parse(uri)
        with self._transaction(caller) as tx:
            document = self._document(tx, uri, kind, parts)
        return [{"uri": uri, "mimeType": MIME, "text": orjson.dumps(document).decode("utf-8")}]

    @staticmethod
    def _parse(uri: str) -> tuple[str, list[str]]:
        prefix = "postgres://"
        if not uri.startswith(prefix):
            raise ResourceNotFound(uri)
        kind, _, rest = uri[len(prefix):].partition("/")
        parts = [unquote(part) for part in rest.split("/")] if rest else []
        expected = {"schema": 1, "table": 2, "function": 2}.get(kind)
        if expected is None or len(parts) != expected or not all(parts):
            raise ResourceNotFound(uri)
        return kind, parts

    def _document(self, tx: Transaction, uri: str, kind: str, parts: list[str]) -> dict[str, Any]:
        visibility = self.visibility(tx)
        if kind == "schema":
            (schema,) = parts
            if not visibility.schema_visible(schema) or not any(
                    s["name"] == schema for s in list_schemas(tx, visibility)):
                raise ResourceNotFound(uri)
            return {
                "schema": schema,
                "tables": list_relations(tx, visibility, schema=schema),
                "functions": list_functions(tx, visibility, schema=schema),
            }
        if kind == "table":
            schema, table = parts
            try:
                oid = find_relation(tx, visibility, schema=schema, name=table)
            except NotFound:
                raise ResourceNotFound(uri) from None
            return describe_relation(tx, oid, visibility)
        schema, name = parts
        overloads = describe_function(tx, visibility, schema=schema, name=name)
        if not overloads:
            raise ResourceNotFound(uri)
        return {"schema": schema, "name": name, "overloads": overloads}
