"""The login role when callers get roles of their own: it must only be able to switch.

With per-caller roles configured, what stands between a caller and every row
is ``SET LOCAL ROLE`` plus the guard's refusal of ``SET ROLE``/``RESET ROLE``.
A superuser or ``BYPASSRLS`` login role would turn one missed escape into a
read of everything, so such a login role stops start-up, and every new pooled
connection is checked again (the role may be altered later, or the database
may have been unreachable at start-up): fail closed, at the cost of one small
query per connection, never per call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions as ext

__all__ = ["LoginRoleReport", "check_login_role", "login_role_refusal", "startup_report"]

_ROLE_SQL = """
SELECT r.rolname AS login, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls, r.rolinherit AS inherit
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user
"""

_MEMBERSHIP_SQL = """
SELECT wanted AS role, r.oid IS NOT NULL AS exists,
       r.oid IS NOT NULL AND pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER') AS granted
FROM unnest(%s::text[]) AS wanted LEFT JOIN pg_catalog.pg_roles r ON r.rolname = wanted
"""


@dataclass(frozen=True)
class LoginRoleReport:
    """``refusal``: why the server must not run as this login role (None: it may); ``warnings``: roles a
    caller would be refused (missing or not granted), and a login role that inherits its callers' rights."""

    refusal: str | None
    warnings: list[str]


def _advice(login: str, roles: Iterable[str]) -> str:
    granted = ", ".join(sorted(set(roles))) or "<caller roles>"
    return (f"connect as a login role that can only switch: CREATE ROLE pgmcp_login LOGIN NOINHERIT PASSWORD "
            f"'...'; GRANT {granted} TO pgmcp_login; (then use it in DATABASE_URL instead of {login})")


def login_role_refusal(conn: ext.connection, roles: Iterable[str] = ()) -> str | None:
    """One line saying why this connection's login role is unfit for per-caller roles, or None."""
    with conn.cursor() as cur:
        cur.execute(_ROLE_SQL)
        row = cur.fetchone()
    if row is None:
        return None
    login, superuser, bypassrls, _ = row
    if not (superuser or bypassrls):
        return None
    what = "a superuser" if superuser else "BYPASSRLS"
    return (f"the login role {login} is {what}, and callers are mapped to database roles: one role escape would "
            f"read every row past row-level security; {_advice(login, roles)}")


def check_login_role(conn: ext.connection, roles: Iterable[str]) -> LoginRoleReport:
    """The start-up check: the refusal above, plus a warning for each role the login role cannot assume."""
    wanted = sorted(set(roles))
    refusal = login_role_refusal(conn, wanted)
    warnings: list[str] = []
    with conn.cursor() as cur:
        cur.execute(_ROLE_SQL)
        login, _, _, inherit = cur.fetchone() or (None, False, False, False)
        cur.execute(_MEMBERSHIP_SQL, (wanted,))
        for role, exists, granted in cur.fetchall():
            if not exists:
                warnings.append(f"database role {role} does not exist: calls of callers mapped to it will fail "
                                f"until it is created (CREATE ROLE \"{role}\" NOLOGIN) and granted to {login}")
            elif not granted:
                warnings.append(f"the login role {login} cannot switch to {role}: calls of callers mapped to it "
                                f"will fail until GRANT \"{role}\" TO {login}")
    if inherit:
        warnings.append(f"the login role {login} has INHERIT: it holds every caller role's privileges itself, so "
                        f"an unmapped caller reads what they read; ALTER ROLE {login} NOINHERIT")
    return LoginRoleReport(refusal=refusal, warnings=warnings)


def startup_report(*, dsn: str, libpq_params: Mapping[str, str], timeout_s: float,
                   roles: Iterable[str]) -> LoginRoleReport:
    """:func:`check_login_role` on a short connection of its own (in the gunicorn master, before fork);
    psycopg2.Error when the database cannot be reached."""
    conn = psycopg2.connect(dsn, application_name="pgmcp-http", connect_timeout=max(2, math.ceil(timeout_s)),
                            **libpq_params)
    try:
        conn.autocommit = True
        return check_login_role(conn, roles)
    finally:
        conn.close()
