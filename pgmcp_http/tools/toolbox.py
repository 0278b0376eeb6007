"""Running a tool: validate the arguments, borrow a transaction, map every failure to an outcome.

This is the one place where database and guard errors become what the caller
reads: a refusal, a timeout or a PostgreSQL error is an ``isError`` result
with a message a person can act on; only an unknown tool is the caller's
protocol mistake (:class:`UnknownTool`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from pgmcp_http.db import (
    ConnectionLost,
    Database,
    DatabaseUnavailable,
    PoolClosed,
    PoolTimeout,
    QueryCancelled,
    QueryFailed,
    QueryTimeout,
)
from pgmcp_http.errors import NotFoundError
from pgmcp_http.sqlguard import Refusal
from pgmcp_http.tools.spec import ToolContext, ToolError, ToolSpec

__all__ = ["ToolOutcome", "Toolbox", "UnknownTool"]

log = logging.getLogger(__name__)


class UnknownTool(NotFoundError):
    """No tool of that name: a protocol error, not a tool failure."""


@dataclass(frozen=True)
class ToolOutcome:
    """What a call produced: structured data, or an error message; ``outcome`` names which."""

    outcome: str
    data: dict[str, Any] | None = None
    error: str | None = None

    @property
    def is_error(self) -> bool:
        return self.error is not None


def _failure(message: str, outcome: str) -> ToolOutcome:
    return ToolOutcome(outcome=outcome, error=message)


class Toolbox:
    """The server's tools, keyed by name, and how to run them."""

    def __init__(self, specs: list[ToolSpec], *, database: Callable[[], Database], context: ToolContext) -> None:
        self._specs = {spec.name: spec for spec in specs}
        self._validators = {spec.name: Draft202012Validator(spec.input_schema) for spec in specs}
        self._database = database
        self.context = context

    def specs(self) -> list[ToolSpec]:
        return list(self._specs.values())

    def get(self, name: str) -> ToolSpec:
        try:
            return self._specs[name]
        except KeyError:
            available = ", ".join(self._specs)
            raise UnknownTool(f"unknown tool {name!r}; available tools: {available}") from None

    def validate(self, name: str, arguments: dict[str, Any]) -> str | None:
        """The first problem with ``arguments`` against the tool's input schema, or None."""
        error = best_match(self._validators[name].iter_errors(arguments))
        if error is None:
            return None
        where = ".".join(str(part) for part in error.path)
        if error.validator == "required" or not where:
            return f"invalid arguments: {error.message}"
        return f"invalid argument `{where}`: {error.message}"

    def call(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        """Run tool ``name``; raises UnknownTool, otherwise always returns an outcome."""
        spec = self.get(name)
        problem = self.validate(name, arguments)
        if problem is not None:
            return _failure(problem, "invalid_arguments")
        for attempt in (1, 2):
            try:
                return self._run_once(spec, arguments)
            except ConnectionLost as exc:
                # A pooled connection died (e.g. PostgreSQL restarted): nothing was
                # committed, so one retry on a fresh connection is safe.
                if attempt == 2:
                    return _failure(str(exc), "unavailable")
                log.info("retrying tool %s on a fresh connection: %s", name, exc)
        raise AssertionError("unreachable")

    def _run_once(self, spec: ToolSpec, arguments: dict[str, Any]) -> ToolOutcome:
        try:
            with self._database().transaction() as tx:
                data = spec.run(tx, arguments, self.context)
            return ToolOutcome(outcome="ok", data=data)
        except ConnectionLost:
            raise
        except Refusal as exc:
            return _failure(f"refused: {exc.reason}", "refused")
        except ToolError as exc:
            return _failure(exc.message, exc.outcome)
        except QueryTimeout as exc:
            return _failure(str(exc), "timeout")
        except QueryCancelled as exc:
            return _failure(str(exc), "cancelled")
        except QueryFailed as exc:
            return _failure(f"PostgreSQL error: {exc.describe()}", "db_error")
        except (PoolTimeout, PoolClosed) as exc:
            return _failure(str(exc), "busy")
        except DatabaseUnavailable as exc:
            return _failure(f"{exc}; retry later", "unavailable")
