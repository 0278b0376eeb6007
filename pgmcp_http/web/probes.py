"""Probes for load balancers and orchestrators: ``/livez``, ``/readyz`` and the guide's ``/health``.

- ``/livez``: the process answers HTTP. It never touches the database, so a
  PostgreSQL outage never makes a platform restart healthy containers (which
  would only add a restart storm to the outage).
- ``/readyz``: this container can serve queries now: PostgreSQL answers a
  probe and the worker is not shutting down. For readiness probes and load
  balancer target health.
- ``/health``: the design guide's JSON, with pool and memory figures for the
  whole container (every live worker, read from the metrics directory), 200
  when PostgreSQL answers within HEALTH_CHECK_TIMEOUT and 503 otherwise.

The database check never borrows a pool connection (see
:mod:`pgmcp_http.db.probe`): a saturated pool is busy, not down.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response

from pgmcp_http import SERVICE_NAME, __version__
from pgmcp_http.db import DatabaseError
from pgmcp_http.observability.logs import redact
from pgmcp_http.observability.memory import human_bytes
from pgmcp_http.runtime import Runtime
from pgmcp_http.web.http import json_response, runtime, secrets

__all__ = ["bp", "probe_database"]

bp = Blueprint("probes", __name__)

NO_STORE = {"Cache-Control": "no-store"}


def probe_database(rt: Runtime) -> str | None:
    """Ask PostgreSQL on the probe's own connection; None when it answered, else why not
    (redacted). The verdict also feeds ``postgres_mcp_database_connected``."""
    try:
        rt.probe.check()
    except DatabaseError as exc:
        rt.metrics.database_probed(False)
        return redact(str(exc), secrets())
    rt.metrics.database_probed(True)
    return None


@bp.get("/livez")
def livez() -> Response:
    return json_response({"status": "alive"}, 200, NO_STORE)


@bp.get("/readyz")
def readyz() -> Response:
    rt = runtime()
    if rt.database().pool.closed:
        return json_response({"status": "not ready", "error": "this worker is shutting down"}, 503, NO_STORE)
    error = probe_database(rt)
    if error is not None:
        return json_response({"status": "not ready", "error": error}, 503, NO_STORE)
    return json_response({"status": "ready"}, 200, NO_STORE)


@bp.get("/health")
def health() -> Response:
    rt = runtime()
    if not rt.settings.health_check_enabled:
        return json_response({"error": "the health endpoint is disabled (HEALTH_CHECK_ENABLED=false); "
                                       "/livez and /readyz still answer"}, 404)
    error = probe_database(rt)
    rt.sampler.sample()  # this worker's figure is fresh; the others' are at most a few seconds old
    figures = rt.metrics.container()
    body: dict[str, Any] = {
        "status": "unhealthy" if error else "healthy",
        "service": SERVICE_NAME,
        "version": __version__,
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "database": "disconnected" if error else "connected",
        "connection_pool": {"total": figures.pool_total, "active": figures.pool_active, "idle": figures.pool_idle},
        "database_nodes": rt.metrics.nodes(),
        "uptime": int(time.time() - rt.started_at),
        "memory_usage": {kind: human_bytes(value) for kind, value in figures.memory.items()},
    }
    if error:
        body["error"] = error
    return json_response(body, 503 if error else 200, NO_STORE)
