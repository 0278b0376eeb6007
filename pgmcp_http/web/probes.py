"""``GET /health``: the guide's health JSON; 200 when PostgreSQL answers, 503 when it does not."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app

from pgmcp_http import SERVICE_NAME, __version__
from pgmcp_http.db import DatabaseError, PoolTimeout
from pgmcp_http.observability.memory import human_bytes, memory_usage
from pgmcp_http.web.http import json_response, runtime

__all__ = ["bp"]

bp = Blueprint("probes", __name__)

PROBE_TIMEOUT_S = 2.0


@bp.get("/health")
def health() -> Response:
    rt = runtime()
    if not rt.settings.health_check_enabled:
        return json_response({"error": "the health endpoint is disabled (HEALTH_CHECK_ENABLED=false)"}, 404)
    database = "connected"
    error: str | None = None
    try:
        rt.database().ping(timeout_s=min(PROBE_TIMEOUT_S, rt.settings.pool_connection_timeout_ms / 1000))
    except PoolTimeout:
        database = "busy"  # every connection is serving a query: PostgreSQL is answering
    except DatabaseError as exc:
        database = "disconnected"
        error = str(exc)
    stats = rt.database().pool.stats()
    memory = memory_usage()
    body: dict[str, Any] = {
        "status": "unhealthy" if error else "healthy",
        "service": SERVICE_NAME,
        "version": __version__,
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "database": database,
        "connection_pool": {"total": stats.size, "active": stats.in_use, "idle": stats.idle},
        "uptime": int(time.time() - current_app.config["PGMCP_STARTED_AT"]),
        "memory_usage": {key: human_bytes(value) for key, value in memory.items()},
    }
    if error:
        body["error"] = error
    return json_response(body, 503 if error else 200)
