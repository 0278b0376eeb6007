"""``completion/complete``: argument values a host can suggest while a person types.

References this server completes:

- resource templates: ``postgres://schema/{schema}`` and
  ``postgres://table/{schema}/{table}`` (``{table}`` narrowed to the schema
  already chosen, when the host passes it in ``context.arguments``), and
  ``postgres://function/{schema}/{name}``;
- prompts: their ``schema`` and ``table_name`` arguments (see :mod:`pgmcp_http.prompts`).

Matching is by prefix, case-insensitive; at most 100 values, with ``total``
and ``hasMore``. Hidden schemas and blocked tables are never suggested.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from pgmcp_http.catalog import Visibility
from pgmcp_http.catalog.names import NameMatches, function_names, schema_names, table_names
from pgmcp_http.catalog.reading import catalog_transaction
from pgmcp_http.db import Database, Transaction
from pgmcp_http.errors import NotFoundError
from pgmcp_http.identity import Caller
from pgmcp_http.prompts import PROMPTS

__all__ = ["MAX_VALUES", "Completions", "UnknownReference"]

MAX_VALUES = 100

_TEMPLATE_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "postgres://schema/{schema}": ("schema",),
    "postgres://table/{schema}/{table}": ("schema", "table"),
    "postgres://function/{schema}/{name}": ("schema", "name"),
}
_PROMPT_KINDS = {"schema": "schema", "schema_name": "schema", "table_name": "table", "table": "table"}


class UnknownReference(NotFoundError):
    """A completion request for a template, prompt or argument this server does not have."""


class Completions:
    """Answers completion requests from the catalog, filtered like the tools."""

    def __init__(self, *, database: Callable[[], Database], visibility: Callable[[Transaction], Visibility]) -> None:
        self._database = database
        self.visibility = visibility  # what a transaction may show (views over blocked tables hidden too)

    def complete(self, ref: dict[str, Any], argument: str, value: str,
                 context: dict[str, str] | None, *, caller: Caller | None = None) -> dict[str, Any]:
        """The ``completion`` object of a CompleteResult: ``values``, ``total``, ``hasMore`` (what
        ``caller``'s role may see)."""
        kind = self._kind(ref, argument)
        schema = (context or {}).get("schema") or (context or {}).get("schema_name")
        with self._transaction(caller) as tx:
            visibility = self.visibility(tx)
            if schema is not None and not visibility.schema_visible(schema):
                return {"values": [], "total": 0, "hasMore": False}
            matches = self._matches(tx, visibility, kind, value, schema)
        return {"values": matches.values, "total": matches.total, "hasMore": matches.total > len(matches.values)}

    def _kind(self, ref: dict[str, Any], argument: str) -> str:
        if ref.get("type") == "ref/resource":
            uri = str(ref.get("uri", ""))
            arguments = _TEMPLATE_ARGUMENTS.get(uri)
            if arguments is None:
                raise UnknownReference(f"no resource template {uri}; see resources/templates/list")
            if argument not in arguments:
                raise UnknownReference(f"template {uri} has no argument {argument!r}; it has "
                                       f"{', '.join(arguments)}")
            return "function" if argument == "name" else argument
        name = str(ref.get("name", ""))
        prompt = PROMPTS.get(name)
        if prompt is None:
            raise UnknownReference(f"no prompt named {name!r}; see prompts/list")
        if argument not in prompt.argument_names():
            raise UnknownReference(f"prompt {name} has no argument {argument!r}")
        kind = _PROMPT_KINDS.get(argument)
        if kind is None:
            return "none"  # a free-text argument (SQL, a description): nothing to suggest
        return kind

    @staticmethod
    def _matches(tx: Transaction, visibility: Visibility, kind: str, value: str, schema: str | None) -> NameMatches:
        if kind == "schema":
            return schema_names(tx, visibility, value, limit=MAX_VALUES)
        if kind == "table":
            return table_names(tx, visibility, value, schema=schema, limit=MAX_VALUES)
        if kind == "function":
            return function_names(tx, visibility, value, schema=schema, limit=MAX_VALUES)
        return NameMatches(values=[], total=0)

    def _transaction(self, caller: Caller | None) -> AbstractContextManager[Transaction]:
        return catalog_transaction(self._database, caller)
