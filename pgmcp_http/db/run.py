"""One transaction per tool call: read-only, time-limited, bounded, always ended.

:func:`transaction` opens nothing until the first statement, then sends
``BEGIN READ ONLY`` and the ``SET LOCAL`` limits in the same round trip as that
statement. Every setting is transaction-local, so nothing outlives the call
(also behind a transaction-mode pooler such as PgBouncer). That includes who
is asking: ``SET LOCAL ROLE`` to the caller's role and its subject and claims
as ``pgmcp.subject`` / ``pgmcp.claims`` (what ``set_config(..., true)`` sets),
so PostgreSQL's privileges and row-level security apply to the caller. If the
role cannot be taken, PostgreSQL aborts the rest of that round trip: the
statement never runs under the login role. An optional ``comment`` (the
sqlcommenter trace context) is appended after every statement sent, outside
anything the guard approved. On the way out the
transaction is rolled back, or committed only for a write the caller asked to
keep; a failure to end it leaves the connection for the pool to discard. A read
that ended cleanly may instead be rolled back in the same round trip as the next
transaction's first statement (``rollback_delay_s``; see
:mod:`pgmcp_http.db.deferred_rollback`).

Rows of a SELECT come from a server-side cursor in batches, so memory stays
bounded whatever the table size: at most ``max_rows`` rows and about
``max_bytes`` bytes are kept, and the result says whether it was cut.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg2
import psycopg2.errors
import psycopg2.extensions as ext

from pgmcp_http.db import deferred_rollback
from pgmcp_http.db.cancel import tagged_application_name
from pgmcp_http.db.errors import (
    ConnectionLost,
    DatabaseUnavailable,
    QueryCancelled,
    QueryFailed,
    QueryTimeout,
    RoleUnavailable,
    first_line,
)
from pgmcp_http.db.nodes import PRIMARY, Node, role_now
from pgmcp_http.db.types import TypeNames
from pgmcp_http.identity import Caller

__all__ = ["Column", "ResultSet", "RowLimits", "Transaction", "transaction"]

CURSOR_NAME = "pgmcp_rows"
FIRST_BATCH = 100
BATCH_BYTES = 256 * 1024
Params = Mapping[str, Any] | Sequence[Any] | None


@dataclass(frozen=True)
class RowLimits:
    """How much of a result to keep."""

    max_rows: int
    max_bytes: int


@dataclass(slots=True)
class Column:
    """A result column: its name, the key its values have in each row, and its type name."""

    name: str
    key: str
    type: str


@dataclass
class ResultSet:
    """Rows as dicts keyed by ``Column.key``, with what was cut and why."""

    columns: list[Column]
    rows: list[dict[str, Any]]
    truncated: bool = False
    truncated_reason: str | None = None
    command: str = ""
    rowcount: int = -1
    extra: dict[str, Any] = field(default_factory=dict)


class Transaction:
    """A lazily begun transaction on one connection; see :func:`transaction`."""

    def __init__(self, conn: ext.connection, *, read_only: bool, server_read_only: bool, timeout_ms: int,
                 types: TypeNames, search_path: tuple[str, ...] = (),
                 timeout_setting: str = "QUERY_TIMEOUT", tag: str | None = None, caller: Caller | None = None,
                 comment: str | None = None, rollback_delay_s: float = 0.0) -> None:
        self.conn = conn
        self.caller = caller
        self.comment = f"\n{comment}" if comment else ""
        self.application_name = tagged_application_name(tag) if tag else None
        self.read_only = read_only or server_read_only
        self.server_read_only = server_read_only
        self.timeout_ms = timeout_ms
        self.timeout_setting = timeout_setting
        self.search_path = search_path
        self.types = types
        self.begun = False
        self.ran = False  # whether any statement was sent (what `answered_by` needs)
        self.commit_on_exit = False
        self.rollback_delay_s = rollback_delay_s
        # A previous read's ROLLBACK, taken from the connection, to send first: when its chain of folded
        # reads began (None: nothing owed). Once sent, that time moves to ``chain_since``.
        self.owed: float | None = None
        self.chain_since: float | None = None

    @property
    def answered_by(self) -> Node | None:
        """The node that ran this transaction's statements, with its role as of the last reply; None when
        nothing was sent (or the connection does not know its node)."""
        node: Node | None = getattr(self.conn, "node", None)
        if node is None or not self.ran:
            return None
        if self.conn.closed:  # it died under the call, or was closed for state it left behind
            return node
        role = role_now(self.conn)  # type: ignore[arg-type]
        lag_s = getattr(self.conn, "lag_s", None) if role != PRIMARY else None
        if role == node.role and lag_s is None:
            return node
        return Node(host=node.host, port=node.port, role=role, lag_s=lag_s)

    def make_writable(self) -> None:
        """Ask for a READ WRITE transaction committed on success (write mode only).

        A transaction's mode is fixed by its first statement, so catalog reads
        made before (the SECURITY DEFINER check) are rolled back and a new
        transaction begins with the next statement.
        """
        if self.server_read_only:
            raise RuntimeError("the server is in read-only mode; writes cannot be enabled")
        if self.begun:
            self.end(commit=False)
        self.read_only = False
        self.commit_on_exit = True

    def _preamble(self) -> str:
        mode = "READ ONLY" if self.read_only else "READ WRITE"
        text = (
            f"BEGIN ISOLATION LEVEL READ COMMITTED {mode}; "
            f"SET LOCAL statement_timeout = {int(self.timeout_ms)}; "
            "SET LOCAL datestyle = 'ISO'; SET LOCAL intervalstyle = 'iso_8601'; SET LOCAL bytea_output = 'hex'; "
        )
        if self.search_path:
            path = ", ".join(_quote_ident(name) for name in self.search_path)
            text += f"SET LOCAL search_path = {path}; "
        if self.application_name:  # hex tag, checked: lets notifications/cancelled find this backend
            text += f"SET LOCAL application_name = '{self.application_name}'; "
        if self.caller is not None and self.caller.identifies:
            text += _identity_preamble(self.caller.role, self.caller.subject, self.caller.claims_json)
        return text

    def _execute(self, cur: ext.cursor, sql: str, params: Params) -> None:
        comment = self.comment if params is None else self.comment.replace("%", "%%")
        if self.begun:
            text = sql + comment
        else:
            preamble = self._preamble()
            if self.owed is not None:
                preamble = "ROLLBACK; " + preamble
            text = (preamble if params is None else preamble.replace("%", "%%")) + sql + comment
        self.ran = True
        try:
            cur.execute(text, params)
        except psycopg2.Error as exc:
            first = not self.begun
            status = self.conn.info.transaction_status
            if first and self.owed is not None and status == ext.TRANSACTION_STATUS_INTRANS:
                # Never sent (psycopg2 refused the parameters): the previous read is still open and still
                # owed; the next statement of this transaction sends the ROLLBACK in front of its BEGIN.
                raise self._translate(exc, cur.query) from None
            self._sent()
            self.begun = self.begun or status != ext.TRANSACTION_STATUS_IDLE
            if first and self._role_refused(exc):
                raise self._role_error(exc) from None
            raise self._translate(exc, cur.query) from None
        self._sent()
        self.begun = True

    def _sent(self) -> None:
        """The owed ROLLBACK went out with the statement: this transaction continues its chain."""
        if self.owed is not None:
            self.chain_since, self.owed = self.owed, None

    def _cursor(self) -> ext.cursor:
        """A cursor for the next statement; before the first, the rollback the connection owes (if any) is
        taken, to go in front of this transaction's BEGIN."""
        if not self.begun and self.owed is None:
            self.owed = deferred_rollback.take(self.conn)
        # The debt is ours now: psycopg2's own cursor(), without NodeConnection's check for it (2% of a
        # worker's time under load, bench-profile).
        return ext.connection.cursor(self.conn)

    def _role_refused(self, exc: psycopg2.Error) -> bool:
        """Whether PostgreSQL refused the preamble's ``SET LOCAL ROLE`` (unknown role, or not granted)."""
        role = self.caller.role if self.caller is not None else None
        if role is None or exc.pgcode not in ("22023", "42704", "42501"):
            return False
        message = exc.diag.message_primary or ""
        return f'"{role}"' in message and "role" in message

    def _role_error(self, exc: psycopg2.Error) -> RoleUnavailable:
        caller = self.caller or Caller(subject="?")
        reason = exc.diag.message_primary or first_line(exc)
        return RoleUnavailable(
            f"cannot act as database role {caller.role} for caller {caller.subject}: {reason}; nothing "
            f"was run. The operator must create the role and grant it to the login role "
            f"(GRANT {_quote_ident(caller.role or '')} TO <login role>)")

    def _translate(self, exc: psycopg2.Error, sent: bytes | None = None) -> Exception:
        if self.conn.closed:
            return ConnectionLost.of(exc)
        if isinstance(exc, psycopg2.errors.QueryCanceled):
            if "statement timeout" in str(exc):
                return QueryTimeout(self.timeout_ms, self.timeout_setting)
            return QueryCancelled("the statement was cancelled before it finished (the client cancelled the "
                                  "request, or an administrator stopped it)")
        diag = exc.diag
        return QueryFailed(
            diag.message_primary or first_line(exc),
            sqlstate=exc.pgcode,
            detail=diag.message_detail,
            hint=diag.message_hint,
            near=_near(sent, diag.statement_position),
        )

    def rows(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        """Run a small statement (catalog queries) and return every row as a dict."""
        with self._cursor() as cur:
            self._execute(cur, sql, params)
            if cur.description is None:
                return []
            names = [col.name for col in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def fetch(self, sql: str, params: Params, limits: RowLimits, *, server_cursor: bool) -> ResultSet:
        """Run one statement and keep at most ``limits`` of its rows.

        ``server_cursor`` must be True only for SELECT/VALUES/TABLE statements
        (what ``DECLARE`` accepts); other statements are read from the client
        buffer with the same limits.
        """
        with self._cursor() as cur:
            if server_cursor:
                first = min(limits.max_rows + 1, FIRST_BATCH)
                self._execute(
                    cur,
                    f"DECLARE {CURSOR_NAME} NO SCROLL CURSOR FOR {sql}; FETCH FORWARD {first} FROM {CURSOR_NAME}",
                    params,
                )
                return self._collect(cur, limits, first_batch=first)
            self._execute(cur, sql, params)
            return self._collect(cur, limits, first_batch=None)

    def _collect(self, cur: ext.cursor, limits: RowLimits, *, first_batch: int | None) -> ResultSet:
        if cur.description is None:
            return ResultSet(columns=[], rows=[], command=cur.statusmessage or "", rowcount=cur.rowcount)
        columns = self._columns(cur.description)
        keys = [col.key for col in columns]
        kept: list[dict[str, Any]] = []
        size = 0
        reason: str | None = None
        batch = first_batch
        while True:
            chunk = cur.fetchall() if batch is not None else cur.fetchmany(FIRST_BATCH)
            for values in chunk:
                if len(kept) >= limits.max_rows:
                    reason = f"MAX_ROWS={limits.max_rows}"
                    break
                row = dict(zip(keys, values, strict=True))
                row_bytes = len(orjson.dumps(row))
                if size + row_bytes > limits.max_bytes:
                    reason = f"MAX_RESULT_BYTES={limits.max_bytes}"
                    if not kept:  # not even one row fits: say so rather than return an empty page silently
                        reason += (f" (the first row alone is {row_bytes} bytes; select fewer columns or shorten "
                                   "long values, e.g. left(col, 200))")
                    break
                kept.append(row)
                size += row_bytes
            if reason is not None or not chunk:
                break
            if batch is None:
                continue
            if len(chunk) < batch:
                break
            average = max(size // max(len(kept), 1), 1)
            batch = max(1, min(limits.max_rows + 1 - len(kept), BATCH_BYTES // average, 10_000))
            self._execute(cur, f"FETCH FORWARD {batch} FROM {CURSOR_NAME}", None)
        # Behind a cursor the status is FETCH's, which would only confuse: no command tag then.
        command = "" if first_batch is not None else (cur.statusmessage or "")
        return ResultSet(columns=columns, rows=kept, truncated=reason is not None, truncated_reason=reason,
                         command=command, rowcount=len(kept))

    def _columns(self, description: Sequence[Any]) -> list[Column]:
        names = self.types.names([col.type_code for col in description], self._lookup_types)
        columns: list[Column] = []
        seen: dict[str, int] = {}
        for col in description:
            key = col.name
            if key in seen:
                # Duplicate names (``SELECT a.id, b.id``) would overwrite each
                # other in a dict row: later ones get a numbered key.
                seen[col.name] += 1
                key = f"{col.name}_{seen[col.name]}"
                while key in seen:
                    key += "_"
            seen.setdefault(key, 1)
            columns.append(Column(name=col.name, key=key, type=names.get(col.type_code, str(col.type_code))))
        return columns

    def _lookup_types(self, oids: list[int]) -> dict[int, str]:
        with self.conn.cursor() as cur:
            self._execute(cur, "SELECT oid::int, format_type(oid, NULL) FROM pg_catalog.pg_type WHERE oid = ANY(%s)",
                          (oids,))
            return {int(oid): name for oid, name in cur.fetchall()}

    def discard(self) -> None:
        """Close the connection so the pool throws it away: for session state that could not be
        cleaned up (a prepared statement or hypothetical index left behind by a failure)."""
        with contextlib.suppress(psycopg2.Error):
            self.conn.close()

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        """End the transaction (see :func:`transaction`); an exception from the body goes on as it was."""
        if self.conn.closed:
            return
        if exc_type is not None:
            with contextlib.suppress(psycopg2.Error):  # the pool sees the state and discards the connection
                self.end(commit=False)
            return
        try:
            self.end(commit=self.commit_on_exit, defer=True)
        except psycopg2.Error as error:
            # Not ConnectionLost: a COMMIT may have reached the server, so no retry.
            raise DatabaseUnavailable(f"database unavailable while ending the transaction ({first_line(error)})"
                                      ) from None

    def end(self, *, commit: bool, defer: bool = False) -> None:
        """Roll back (or commit) if anything was begun; errors propagate to the pool's check. With ``defer``
        and a ``rollback_delay_s``, a read-only transaction in good state is left open, owing its rollback
        to the next transaction on the connection (or to the pool's settler), unless its chain of folded
        reads is already :func:`~pgmcp_http.db.deferred_rollback.chain_limit_s` old."""
        if not self.begun:  # a debt taken but never sent is left to the pool, which rolls back at check-in
            return
        status = self.conn.info.transaction_status
        if (defer and self.rollback_delay_s > 0 and self.read_only and not commit
                and status == ext.TRANSACTION_STATUS_INTRANS):
            now = time.monotonic()
            since = self.chain_since if self.chain_since is not None else now
            if now - since < deferred_rollback.chain_limit_s(self.rollback_delay_s):
                deferred_rollback.owe(self.conn, since)
                self.begun = False
                return
        with self.conn.cursor() as cur:
            if commit and status == ext.TRANSACTION_STATUS_INTRANS:
                cur.execute("COMMIT")
            else:
                cur.execute("ROLLBACK")
        self.begun = False


def transaction(conn: ext.connection, *, read_only: bool, server_read_only: bool, timeout_ms: int,
                types: TypeNames, search_path: tuple[str, ...] = (),
                timeout_setting: str = "QUERY_TIMEOUT", tag: str | None = None, caller: Caller | None = None,
                comment: str | None = None, rollback_delay_s: float = 0.0) -> Transaction:
    """A transaction for a ``with`` block that is always ended: rolled back, or committed when the body
    asked for a write (:meth:`Transaction.make_writable`) and finished without an error; with a
    ``rollback_delay_s``, a read that finished cleanly owes its rollback to the connection's next
    transaction."""
    return Transaction(conn, read_only=read_only, server_read_only=server_read_only, timeout_ms=timeout_ms,
                       types=types, search_path=search_path, timeout_setting=timeout_setting, tag=tag,
                       caller=caller, comment=comment, rollback_delay_s=rollback_delay_s)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    """An escape-string literal, read the same whatever standard_conforming_strings says."""
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


@functools.lru_cache(maxsize=1024)
def _identity_preamble(role: str | None, subject: str, claims_json: str) -> str:
    """``SET LOCAL ROLE`` and the caller's settings, built once per caller (callers are few and fixed)."""
    text = f"SET LOCAL ROLE {_quote_ident(role)}; " if role else ""
    return (text + f"SET LOCAL pgmcp.subject = {_quote_literal(subject)}; "
            f"SET LOCAL pgmcp.claims = {_quote_literal(claims_json)}; ")


def _near(sent: bytes | None, position: str | None) -> str | None:
    """The text at PostgreSQL's error position (1-based characters of what was sent).

    The position counts the server's own preamble, so the words are quoted
    instead of the number.
    """
    if not sent or not position:
        return None
    text = sent.decode("utf-8", "replace")
    start = int(position) - 1
    snippet = text[start:start + 40].split("\n")[0].strip()
    return f"`{snippet}`" if snippet else None
