"""Opening one connection the way every part of the server needs it.

Session defaults are sent as startup options (read-only, statement and
idle-in-transaction timeouts, application name) as a second line of defence;
the first line is per transaction (``BEGIN READ ONLY`` and ``SET LOCAL`` in
:mod:`pgmcp_http.db.run`), which also holds behind a transaction-mode pooler
that drops startup options. A pooler that *refuses* them (PgBouncer's default:
"unsupported startup parameter: options") gets the connection again without
them, with one warning per process: refusing to start there would gain nothing,
since the per-transaction settings are what hold behind such a pooler anyway.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import psycopg2

from pgmcp_http.db.errors import first_line
from pgmcp_http.db.nodes import NodeConnection, describe
from pgmcp_http.db.routing import session_attrs
from pgmcp_http.db.values import register_casters

__all__ = ["APPLICATION_NAME", "ConnectOptions", "open_connection"]

APPLICATION_NAME = "pgmcp-http"

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ConnectOptions:
    """What a new connection needs: where, how long to try, and its session defaults."""

    dsn: str
    libpq_params: dict[str, str]
    connect_timeout_s: int
    read_only: bool
    statement_timeout_ms: int
    idle_in_transaction_timeout_ms: int
    # Called for every new connection: the DSN and extra libpq parameters (a password that rotates or
    # a cloud IAM token; see pgmcp_http.db.credentials). None: ``dsn`` and ``libpq_params`` as given.
    secrets: Callable[[], tuple[str, dict[str, str]]] | None = None


def _startup_options(opts: ConnectOptions) -> str:
    settings = [
        f"statement_timeout={opts.statement_timeout_ms}",
        f"idle_in_transaction_session_timeout={opts.idle_in_transaction_timeout_ms}",
    ]
    if opts.read_only:
        settings.append("default_transaction_read_only=on")
    return " ".join(f"-c {item}" for item in settings)


def open_connection(opts: ConnectOptions) -> NodeConnection:
    """Connect where libpq's routing says (see :mod:`pgmcp_http.db.routing`), switch to autocommit
    (transactions are explicit), install the JSON casters and note which node answered."""
    if opts.secrets is not None:
        dsn, extra = opts.secrets()
        opts = replace(opts, dsn=dsn, libpq_params={**opts.libpq_params, **extra}, secrets=None)
    try:
        conn = _connect(opts, options=_startup_options(opts))
    except psycopg2.OperationalError as exc:
        if "unsupported startup parameter" not in str(exc):
            raise
        _warn_options_refused(first_line(exc))
        conn = _connect(opts, options=None)
    conn.autocommit = True
    register_casters(conn)
    try:
        describe(conn, now=time.monotonic())
    except psycopg2.Error as exc:
        conn.close()
        if isinstance(exc, psycopg2.OperationalError):
            raise
        raise psycopg2.OperationalError(f"could not tell whether the node is a primary or a standby "
                                        f"({first_line(exc)})") from None
    return conn


def _connect(opts: ConnectOptions, *, options: str | None) -> NodeConnection:
    extra = {"options": options} if options else {}
    attrs = session_attrs(opts.dsn, opts.libpq_params, read_only=opts.read_only)
    if attrs is not None:
        extra["target_session_attrs"] = attrs
    params = {key: value for key, value in opts.libpq_params.items() if key != "target_session_attrs"}
    return psycopg2.connect(
        opts.dsn,
        connection_factory=NodeConnection,
        application_name=APPLICATION_NAME,
        connect_timeout=max(2, opts.connect_timeout_s),
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
        **extra,
        **params,
    )


@functools.lru_cache(maxsize=1)
def _warn_options_refused(reason: str) -> None:
    """Once per process: say that session defaults are off and why that is safe."""
    log.warning("the database (or a pooler in front of it) refused the session defaults sent at connect time "
                "(%s): connecting without them; every call still runs in its own read-only transaction with "
                "SET LOCAL statement_timeout and search_path, which is what holds behind a transaction-mode pooler",
                reason)
