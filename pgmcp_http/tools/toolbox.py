"""Running a tool: validate the arguments, borrow a transaction, map every failure to an outcome.

This is the one place where database and guard errors become what the caller
reads: a refusal, a timeout or a PostgreSQL error is an ``isError`` result
with a message a person can act on; only an unknown tool is the caller's
protocol mistake (:class:`UnknownTool`). Every finished call is reported to
the observers (metrics, the slow-query log) with its outcome and duration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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

__all__ = ["CallObserver", "ToolOutcome", "Toolbox", "UnknownTool"]

log = logging.getLogger(__name__)


class UnknownTool(NotFoundError):
    """No tool of that name: a protocol error, not a tool failure."""


@dataclass(frozen=True)
class ToolOutcome:
    """What a call produced: structured data, or an error message; ``outcome`` names which."""

    outcome: str
    data: dict[str, Any] | None = None
    error: str | None = None
    texts: list[str] | None = None  # the text content when the tool renders its data (e.g. as CSV)

    @property
    def is_error(self) -> bool:
        return self.error is not None


class CallObserver(Protocol):
    """Told of every finished call of a known tool; must be quick and must not raise."""

    def tool_called(self, name: str, arguments: Mapping[str, Any], outcome: str, seconds: float) -> None:
        """``outcome`` is ToolOutcome.outcome; ``seconds`` runs from the call to its result."""


def _failure(message: str, outcome: str) -> ToolOutcome:
    return ToolOutcome(outcome=outcome, error=message)


class Toolbox:
    """The server's tools, keyed by name, and how to run them."""

    def __init__(self, specs: list[ToolSpec], *, database: Callable[[], Database], context: ToolContext,
                 observers: Sequence[CallObserver] = ()) -> None:
        self._specs = {spec.name: spec for spec in specs}
        self._validators = {spec.name: Draft202012Validator(spec.input_schema) for spec in specs}
        self._database = database
        self.context = context
        self._observers = tuple(observers)

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

    def call(self, name: str, arguments: dict[str, Any], *, tag: str | None = None) -> ToolOutcome:
        """Run tool ``name``; raises UnknownTool, otherwise always returns an outcome. ``tag`` names the
        call's transaction so that ``notifications/cancelled`` can stop it from any worker."""
        spec = self.get(name)
        started = time.perf_counter()
        outcome = "internal_error"  # what the observers hear if a bug escapes below
        try:
            result = self._call(spec, arguments, tag)
            outcome = result.outcome
            return result
        finally:
            seconds = time.perf_counter() - started
            for observer in self._observers:
                observer.tool_called(name, arguments, outcome, seconds)

    def _call(self, spec: ToolSpec, arguments: dict[str, Any], tag: str | None) -> ToolOutcome:
        name = spec.name
        problem = self.validate(name, arguments)
        if problem is not None:
            return _failure(problem, "invalid_arguments")
        for attempt in (1, 2):
            try:
                return self._run_once(spec, arguments, tag)
            except ConnectionLost as exc:
                # A pooled connection died (e.g. PostgreSQL restarted): nothing was
                # committed, so one retry on a fresh connection is safe.
                if attempt == 2:
                    return _failure(str(exc), "unavailable")
                log.info("retrying tool %s on a fresh connection: %s", name, exc)
        raise AssertionError("unreachable")

    def _run_once(self, spec: ToolSpec, arguments: dict[str, Any], tag: str | None) -> ToolOutcome:
        try:
            with self._database().transaction(timeout_ms=spec.timeout_ms, timeout_setting=spec.timeout_setting,
                                              tag=tag) as tx:
                data = spec.run(tx, arguments, self.context)
            texts = spec.render(data, arguments) if spec.render is not None else None
            return ToolOutcome(outcome="ok", data=data, texts=texts)
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
