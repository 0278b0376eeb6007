"""Where a connection must land: DATABASE_URL's ``target_session_attrs``, as this server reads it.

libpq does the routing across ``host=a,b,c`` (trying hosts in order, or at
random with ``load_balance_hosts=random``); this module decides two things
around it:

- What to ask libpq for. In read-only mode every session is opened with
  ``default_transaction_read_only=on`` (the second line of defence, see
  :mod:`pgmcp_http.db.connect`), so libpq's ``read-only`` test would accept a
  primary and its ``read-write`` test would refuse every node. Here they mean
  the node's own state: ``read-only`` is asked as ``standby`` and
  ``read-write`` as ``primary``. In write mode the server insists on a node
  that takes writes: unset or ``any`` is asked as ``read-write``.
- Whether a pooled connection still fits after a call (:func:`fits`): one
  whose node changed role (promoted, demoted) is replaced, and one that fell
  back to a primary under ``prefer-standby`` is replaced after
  :data:`FALLBACK_LIFETIME_S`, so the pool returns to the standbys once they
  are back.
"""

from __future__ import annotations

from collections.abc import Mapping

import psycopg2
from psycopg2.extensions import parse_dsn

from pgmcp_http.db.nodes import PRIMARY, STANDBY

__all__ = ["FALLBACK_LIFETIME_S", "fits", "hosts", "requested", "session_attrs"]

FALLBACK_LIFETIME_S = 30.0
_AS_NODE = {"read-only": "standby", "read-write": "primary"}


def requested(dsn: str, params: Mapping[str, str]) -> str | None:
    """The ``target_session_attrs`` the operator gave (a libpq parameter beats the DSN's own)."""
    if params.get("target_session_attrs"):
        return params["target_session_attrs"]
    try:
        return parse_dsn(dsn).get("target_session_attrs")
    except psycopg2.ProgrammingError:
        return None


def session_attrs(dsn: str, params: Mapping[str, str], *, read_only: bool) -> str | None:
    """The ``target_session_attrs`` to connect with (None: leave libpq's default, ``any``)."""
    attrs = requested(dsn, params)
    if read_only:
        return _AS_NODE.get(attrs or "", attrs)
    if attrs in (None, "", "any"):
        return "read-write"
    return attrs


def fits(attrs: str | None, *, opened_role: str, role_now: str, age_s: float) -> bool:
    """Whether a connection opened on an ``opened_role`` node may serve the next call."""
    if role_now != opened_role:
        return False
    if attrs in ("primary", "read-write"):
        return role_now == PRIMARY
    if attrs in ("standby", "read-only"):
        return role_now == STANDBY
    if attrs == "prefer-standby" and role_now == PRIMARY:
        return age_s < FALLBACK_LIFETIME_S
    return True


def hosts(dsn: str, params: Mapping[str, str]) -> list[dict[str, str]]:
    """The libpq parameters that reach each host the connection string names, one at a time, in order
    (a single entry for a single host)."""
    try:
        parsed = {**parse_dsn(dsn), **params}
    except psycopg2.ProgrammingError:
        return []
    lists = {key: parsed[key].split(",") for key in ("host", "hostaddr", "port") if parsed.get(key)}
    count = max((len(values) for values in lists.values()), default=1)
    places = []
    for index in range(count):
        place = {key: values[index if len(values) > 1 else 0] for key, values in lists.items()
                 if index < len(values) or len(values) == 1}
        places.append(place)
    return places
