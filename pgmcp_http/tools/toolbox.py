"""Running a tool: validate the arguments, borrow a transaction, map every failure to an outcome.

This is the one place where database and guard errors become what the caller
reads: a refusal, a timeout or a PostgreSQL error is an ``isError`` result
with a message a person can act on; only an unknown tool is the caller's
protocol mistake (:class:`UnknownTool`). Every finished call is reported to
the observers (metrics, the slow-query log) with its outcome and duration, and
noted in the call's :class:`~pgmcp_http.callrecord.CallRecord` for the audit
trail (statement, parameter types, rows, outcome; never a value). The
transaction runs as the caller's role, inside a database span when tracing is
on, whose trace context follows each statement as a sqlcommenter comment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from pgmcp_http.callrecord import CallRecord, json_type, scrub
from pgmcp_http.db import (
    ConnectionLost,
    Database,
    DatabaseUnavailable,
    Node,
    PoolClosed,
    PoolTimeout,
    QueryCancelled,
    QueryFailed,
    QueryTimeout,
    RoleRefused,
    RoleUnavailable,
)
from pgmcp_http.db.replica_lag import StandbyBehind
from pgmcp_http.errors import NotFoundError
from pgmcp_http.identity import Caller
from pgmcp_http.sqlguard import Approved, Refusal
from pgmcp_http.tools.spec import ToolContext, ToolError, ToolSpec
from pgmcp_http.tools.validation import ArgumentValidator

__all__ = ["NODE_META_KEY", "CallObserver", "DatabaseTracer", "ToolOutcome", "Toolbox", "UnknownTool", "statement_of"]

NODE_META_KEY = "pgmcp-http/node"

log = logging.getLogger(__name__)


class UnknownTool(NotFoundError):
    """No tool of that name: a protocol error, not a tool failure."""


@dataclass(slots=True)
class ToolOutcome:
    """What a call produced: structured data, or an error message; ``outcome`` names which."""

    outcome: str
    data: dict[str, Any] | None = None
    error: str | None = None
    texts: list[str] | None = None  # the text content when the tool renders its data (e.g. as CSV)
    node: Node | None = None  # the PostgreSQL node that answered, when any statement ran

    @property
    def meta(self) -> dict[str, Any] | None:
        """The result's ``_meta``: which node answered (``pgmcp-http/node``), when one did."""
        if self.node is None:
            return None
        node: dict[str, Any] = {"role": self.node.role, "node": self.node.name}
        if self.node.lag_s is not None:
            node["lag_s"] = round(self.node.lag_s, 3)
        return {NODE_META_KEY: node}

    @property
    def is_error(self) -> bool:
        return self.error is not None


class CallObserver(Protocol):
    """Told of every finished call of a known tool; must be quick and must not raise."""

    def tool_called(self, name: str, arguments: Mapping[str, Any], outcome: str, seconds: float) -> None:
        """``outcome`` is ToolOutcome.outcome; ``seconds`` runs from the call to its result."""


class DatabaseTracer(Protocol):
    """Opens the span around a tool's database work (see observability/tracing.py)."""

    def database_span(self, tool: str, summary: Callable[[], str]) -> AbstractContextManager[str | None]:
        """Yield the sqlcommenter comment to append to each statement (None: no comment)."""
        ...


@contextmanager
def _no_span(tool: str, summary: Callable[[], str]) -> Iterator[str | None]:
    yield None


class _Untraced:
    database_span = staticmethod(_no_span)


def _failure(message: str, outcome: str, node: Node | None = None) -> ToolOutcome:
    return ToolOutcome(outcome=outcome, error=message, node=node)


def statement_of(spec: ToolSpec, arguments: Mapping[str, Any]) -> str | None:
    """The SQL a call runs, as written: a custom tool's own (whatever its parameters are called: one named
    ``sql`` is a value, not the statement), else the ``sql`` argument (query, analyze_query)."""
    fixed = getattr(spec.run, "sql", None)
    if isinstance(fixed, str):
        return fixed
    sql = arguments.get("sql")
    return sql if isinstance(sql, str) else None


def _param_types(spec: ToolSpec, arguments: Mapping[str, Any]) -> list[str] | None:
    """The JSON types of the values bound to the statement, in order: ``params`` ($1..$n) of query, or a
    custom tool's arguments in the order it declares them. Types only, never a value."""
    params = arguments.get("params")
    if isinstance(params, list):
        return [json_type(value) for value in params]
    if getattr(spec.run, "sql", None) is None:
        return None
    order = list(spec.input_schema.get("properties") or {})
    return [json_type(arguments[name]) for name in order if name in arguments]


class Toolbox:
    """The server's tools, keyed by name, and how to run them."""

    def __init__(self, specs: list[ToolSpec], *, database: Callable[[], Database], context: ToolContext,
                 observers: Sequence[CallObserver] = (), tracer: DatabaseTracer | None = None) -> None:
        self._specs = {spec.name: spec for spec in specs}
        self._validators = {spec.name: ArgumentValidator(spec.input_schema) for spec in specs}
        self._database = database
        self.context = context
        self._observers = tuple(observers)
        self._tracer: DatabaseTracer = tracer or _Untraced()

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
        return self._validators[name].problem(arguments)

    def call(self, name: str, arguments: dict[str, Any], *, tag: str | None = None, caller: Caller | None = None,
             record: CallRecord | None = None) -> ToolOutcome:
        """Run tool ``name``; raises UnknownTool, otherwise always returns an outcome. ``tag`` names the
        call's transaction so that ``notifications/cancelled`` can stop it from any worker; the SQL runs as
        ``caller``'s role; ``record`` is told what the audit trail says of the call."""
        spec = self.get(name)
        started = time.perf_counter()
        outcome = "internal_error"  # what the observers hear if a bug escapes below
        result: ToolOutcome | None = None
        try:
            result = self._call(spec, arguments, tag, caller)
            outcome = result.outcome
            return result
        finally:
            seconds = time.perf_counter() - started
            for observer in self._observers:
                observer.tool_called(name, arguments, outcome, seconds)
            if record is not None:
                _note(record, spec, arguments, outcome, result)

    def _call(self, spec: ToolSpec, arguments: dict[str, Any], tag: str | None,
              caller: Caller | None) -> ToolOutcome:
        name = spec.name
        problem = self.validate(name, arguments)
        if problem is not None:
            return _failure(problem, "invalid_arguments")
        for attempt in (1, 2):
            try:
                return self._run_once(spec, arguments, tag, caller)
            except ConnectionLost as exc:
                # A pooled connection died (e.g. PostgreSQL restarted): nothing was
                # committed, so one retry on a fresh connection is safe.
                if attempt == 2:  # the retry met a lost connection too: the same words as any outage
                    return _failure(f"{exc}; retry later", "unavailable")
                log.info("retrying tool %s on a fresh connection: %s", name, exc)
        raise AssertionError("unreachable")

    def writes(self, name: str, arguments: Mapping[str, Any]) -> bool:
        """Whether a call would change data: a tool that may write (``readOnlyHint`` false, only with
        READ_ONLY=false) given a statement the guard classifies as a write (a memo lookup). False for an
        unknown tool or a statement the guard refuses: the call then fails without writing anything."""
        spec = self._specs.get(name)
        if spec is None or spec.annotations.get("readOnlyHint", True):
            return False
        approved = self._approved(spec, arguments)
        return approved is not None and approved.kind not in ("select", "show")

    def _approved(self, spec: ToolSpec, arguments: Mapping[str, Any]) -> Approved | None:
        """The guard's verdict on the statement a call runs (a memo lookup), None when there is no statement
        or the guard refuses it (the call then reports the refusal itself)."""
        sql = statement_of(spec, arguments)
        if sql is None:
            return None
        try:
            return self.context.guard.check(sql)
        except Refusal:
            return None

    def _summary(self, spec: ToolSpec, arguments: Mapping[str, Any]) -> str:
        """The database span's name: the statement's kind and tables (``SELECT shop.orders``) when the guard
        approves it, else the tool's name; never a value."""
        approved = self._approved(spec, arguments)
        if approved is None:
            return spec.name
        operation = {"select": "SELECT", "show": "SHOW"}.get(approved.kind, "WRITE")
        names = sorted(f"{schema}.{table}" if schema else table for schema, table in approved.relations)
        return " ".join([operation, *names[:4]])

    def _run_once(self, spec: ToolSpec, arguments: dict[str, Any], tag: str | None,
                  caller: Caller | None) -> ToolOutcome:
        node: Node | None = None  # who answered, also when what it answered was an error
        try:
            with self._tracer.database_span(spec.name, lambda: self._summary(spec, arguments)) as comment, \
                    self._database().transaction(timeout_ms=spec.timeout_ms, timeout_setting=spec.timeout_setting,
                                                 tag=tag, caller=caller, comment=comment) as tx:
                try:
                    data = spec.run(tx, arguments, self.context)
                finally:
                    node = tx.answered_by
            texts = spec.render(data, arguments) if spec.render is not None else None
            return ToolOutcome(outcome="ok", data=data, texts=texts, node=node)
        except ConnectionLost:
            raise
        except Refusal as exc:
            return _failure(f"refused: {exc.reason}", "refused", node)
        except RoleRefused as exc:
            return _failure(f"refused: {exc}", "refused")
        except RoleUnavailable as exc:
            return _failure(str(exc), "role_unavailable", node)
        except ToolError as exc:
            return _failure(exc.message, exc.outcome, node)
        except QueryTimeout as exc:
            return _failure(str(exc), "timeout", node)
        except QueryCancelled as exc:
            return _failure(str(exc), "cancelled", node)
        except QueryFailed as exc:
            return _failure(f"PostgreSQL error: {exc.describe()}", "db_error", node)
        except (PoolTimeout, PoolClosed) as exc:
            return _failure(str(exc), "busy")
        except StandbyBehind as exc:
            return _failure(str(exc), "stale")
        except DatabaseUnavailable as exc:
            return _failure(f"{exc}; retry later", "unavailable", node)


def _note(record: CallRecord, spec: ToolSpec, arguments: Mapping[str, Any], outcome: str,
          result: ToolOutcome | None) -> None:
    """What the audit trail says of a finished call: no argument or result value, only shapes and counts."""
    record.tool = spec.name
    record.outcome = outcome
    record.sql = statement_of(spec, arguments)
    record.param_types = _param_types(spec, arguments)
    if result is None:
        return
    if result.node is not None:
        record.node, record.node_role = result.node.name, result.node.role
    params = arguments.get("params")
    record.reason = scrub(result.error, params if isinstance(params, list) else list(arguments.values()))
    data = result.data or {}
    if isinstance(data.get("row_count"), int):
        record.rows = data["row_count"]
    if isinstance(data.get("truncated"), bool):
        record.truncated = data["truncated"]
