"""One transaction for reading the catalog on a caller's behalf, with the errors the protocol layer maps.

Resources and completions both read the catalog outside a tool call; a role
the caller may not take is ForbiddenError, an unreachable database is
UnavailableError (the protocol layer turns them into JSON-RPC errors).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pgmcp_http.db import Database, DatabaseError, RoleRefused, RoleUnavailable, Transaction
from pgmcp_http.errors import ForbiddenError, UnavailableError
from pgmcp_http.identity import Caller

__all__ = ["catalog_transaction"]


@contextmanager
def catalog_transaction(database: Callable[[], Database], caller: Caller | None) -> Iterator[Transaction]:
    try:
        with database().transaction(caller=caller) as tx:
            yield tx
    except (RoleRefused, RoleUnavailable) as exc:
        raise ForbiddenError(str(exc)) from None
    except DatabaseError as exc:
        raise UnavailableError(f"cannot read the catalog: {exc}") from None
