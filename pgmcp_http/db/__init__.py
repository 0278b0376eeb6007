"""Database access: the only package that opens connections.

``pool`` (per worker, bounded wait, broken connections discarded), ``run``
(one read-only transaction per call: timeout, server-side cursor, caps,
rollback), ``values`` (PostgreSQL values to JSON), ``params`` (arguments to
driver parameters), ``probe`` (the health check's own short connection). No
Flask, no MCP.
"""

from pgmcp_http.db.cancel import Canceller
from pgmcp_http.db.connect import ConnectOptions, open_connection
from pgmcp_http.db.database import Database
from pgmcp_http.db.errors import (
    ConnectionLost,
    DatabaseError,
    DatabaseUnavailable,
    PoolClosed,
    PoolTimeout,
    QueryCancelled,
    QueryFailed,
    QueryTimeout,
    RoleRefused,
    RoleUnavailable,
)
from pgmcp_http.db.nodes import PRIMARY, STANDBY, Node
from pgmcp_http.db.params import ParamCountError, ParamError, bind
from pgmcp_http.db.pool import Pool, PoolObserver, PoolStats
from pgmcp_http.db.probe import Probe
from pgmcp_http.db.run import Column, ResultSet, RowLimits, Transaction

__all__ = [
    "Canceller",
    "Column",
    "ConnectOptions",
    "ConnectionLost",
    "Database",
    "DatabaseError",
    "DatabaseUnavailable",
    "Node",
    "PRIMARY",
    "ParamCountError",
    "ParamError",
    "Pool",
    "PoolClosed",
    "PoolObserver",
    "PoolStats",
    "PoolTimeout",
    "Probe",
    "QueryCancelled",
    "QueryFailed",
    "QueryTimeout",
    "ResultSet",
    "RoleRefused",
    "RoleUnavailable",
    "RowLimits",
    "STANDBY",
    "Transaction",
    "bind",
    "open_connection",
]
