"""Stopping a tagged statement from any process: ``pg_cancel_backend`` on a short connection of its own.

The canceller never borrows a pool slot (the pool may be full of the very
queries a client wants to stop). It finds the backend whose transaction
carries the tag as ``application_name`` (see :meth:`Transaction._preamble`)
and is run by the same role, so it can only stop this server's own work.
Only a backend running a statement (``state = 'active'``) is signalled: a
finished call's backend may keep its tag, idle in its transaction, until the
next call on that connection rolls it back (see
:mod:`pgmcp_http.db.deferred_rollback`), and a cancel sent there could reach
that next call. So a statement that has already finished is simply not found. When
DATABASE_URL names several hosts, the statement may run on any of them, so
each host is asked in turn.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable

import psycopg2

from pgmcp_http.db.connect import APPLICATION_NAME
from pgmcp_http.db.errors import DatabaseUnavailable, first_line
from pgmcp_http.db.routing import hosts

__all__ = ["TAG_PREFIX", "Canceller", "tagged_application_name"]

log = logging.getLogger(__name__)

TAG_PREFIX = f"{APPLICATION_NAME}/"
_TAG = re.compile(r"[0-9a-f]{8,48}")

_CANCEL_SQL = """
SELECT count(*) FILTER (WHERE pg_catalog.pg_cancel_backend(pid)) AS cancelled
FROM pg_catalog.pg_stat_activity
WHERE application_name = %(name)s AND usename = current_user AND pid <> pg_catalog.pg_backend_pid()
  AND state = 'active'
"""


def tagged_application_name(tag: str) -> str:
    """The ``application_name`` a tagged transaction runs under (the tag must be hex)."""
    if not _TAG.fullmatch(tag):  # what makes the tag safe to write into SET LOCAL application_name
        raise ValueError(f"invalid request tag {tag!r}")
    return TAG_PREFIX + tag


class Canceller:
    """Cancels tagged statements over a fresh connection, within ``timeout_s``."""

    def __init__(self, *, dsn: str, libpq_params: dict[str, str], timeout_s: float,
                 secrets: Callable[[], tuple[str, dict[str, str]]] | None = None) -> None:
        self._dsn = dsn
        self._libpq_params = libpq_params
        self._timeout_s = timeout_s
        self._secrets = secrets

    def cancel(self, tag: str) -> int:
        """Cancel the statement tagged ``tag`` wherever it runs; return how many backends were signalled."""
        name = tagged_application_name(tag)
        try:
            dsn, extra = self._secrets() if self._secrets is not None else (self._dsn, {})
        except DatabaseUnavailable as exc:
            log.warning("could not cancel a request: %s", first_line(exc))
            return 0
        params = {**self._libpq_params, **extra}
        places = hosts(dsn, params)
        if len(places) <= 1:
            return self._cancel_on(dsn, params, name)
        return sum(self._cancel_on(dsn, {**params, **place, "target_session_attrs": "any",
                                         "load_balance_hosts": "disable"}, name)
                   for place in places)

    def _cancel_on(self, dsn: str, params: dict[str, str], name: str) -> int:
        try:
            conn = psycopg2.connect(dsn, application_name=f"{APPLICATION_NAME}-cancel",
                                    connect_timeout=max(2, math.ceil(self._timeout_s)), **params)
        except psycopg2.OperationalError as exc:
            log.warning("could not cancel a request: %s", first_line(exc))
            return 0
        try:
            with conn.cursor() as cur:  # one transaction, so the timeout stays local behind a pooler too
                cur.execute("SET LOCAL statement_timeout = %s", (f"{max(1, int(self._timeout_s * 1000))}ms",))
                cur.execute(_CANCEL_SQL, {"name": name})
                (count,) = cur.fetchone()
            conn.rollback()
            return int(count)
        except psycopg2.Error as exc:
            log.warning("could not cancel a request: %s", first_line(exc))
            return 0
        finally:
            conn.close()
