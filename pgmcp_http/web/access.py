"""What every HTTP request leaves in the logs and metrics: one access line, the HTTP and MCP counters.

Flask routes come here from an ``after_request`` hook; ``POST /mcp`` (a plain
WSGI function, see :mod:`pgmcp_http.web.mcp`) calls it directly. The HTTP
figures of ``POST /mcp`` go into the same series prometheus-flask-exporter
keeps for the Flask routes (``flask_http_request_*``, route ``/mcp``), so a
dashboard sees one set of metrics whichever path served a request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry

from pgmcp_http import process
from pgmcp_http.observability.batching import MetricBatch
from pgmcp_http.observability.lines import LineWriter, json_line
from pgmcp_http.observability.logs import ACCESS_LOGGER
from pgmcp_http.observability.metrics import Metrics
from pgmcp_http.web.exchange import Exchange

__all__ = ["AccessLog", "HttpSeries"]

access_log = logging.getLogger(ACCESS_LOGGER)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


class HttpSeries:
    """prometheus-flask-exporter's request series, recorded from outside Flask.

    The exporter keeps its metrics to itself, so they are looked up by name in
    the registry it was given (once, at start-up); label children are kept per
    (method, status) so a request costs two increments and one observation.
    """

    def __init__(self, registry: CollectorRegistry, route: str, batch: MetricBatch) -> None:
        self._batch = batch  # the Metrics' own: held and written with the rest of the worker's figures
        found = registry._names_to_collectors  # no public lookup by name
        try:
            self._duration = found["flask_http_request_duration_seconds"]
            self._total = found["flask_http_request_total"]
            self._exceptions = found["flask_http_request_exceptions_total"]
        except KeyError as exc:
            raise RuntimeError(f"prometheus-flask-exporter did not register {exc}; is it initialised first?") from None
        self._route = route
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def record(self, method: str, status: int, seconds: float, *, failed: bool = False) -> None:
        method = method if method in HTTP_METHODS else "other"
        children = self._children.get((method, status))
        if children is None:
            children = (self._duration.labels(method=method, route=self._route, status=str(status)),
                        self._total.labels(method=method, status=str(status)))
            self._children[(method, status)] = children
        self._batch.observe(children[0], seconds)
        self._batch.inc(children[1])
        if failed:
            self._batch.inc(self._exceptions.labels(method=method, status="500"))


class AccessLog:
    """Writes the access line of a request and counts it (MCP methods by revision and result).

    The line has the shape of every other log line (time, level, logger,
    message, then the request's fields) and goes to stderr with them, at INFO
    on the ``pgmcp.access`` logger; it is built here and written with one
    ``write(2)`` (see :mod:`~pgmcp_http.observability.lines`), secrets redacted.
    """

    def __init__(self, metrics: Metrics, secrets: Iterable[str] = ()) -> None:
        self.metrics = metrics
        self.lines = LineWriter("stderr", secrets)

    def record(self, exchange: Exchange, *, method: str, path: str, status: int) -> float:
        """Log and count the request ``exchange`` answered with ``status``; returns its duration in seconds."""
        seconds = time.perf_counter() - exchange.started
        noted = exchange.log_fields
        if access_log.isEnabledFor(logging.INFO):
            self.lines.write(json_line({
                "time": self.lines.clock.now(), "level": "INFO", "logger": ACCESS_LOGGER, "message": "request",
                "request_id": exchange.request_id, "method": method, "path": path, "status": status,
                "duration_ms": round(seconds * 1000, 2), "worker_pid": process.pid(), **noted}))
        self.metrics.rpc_request(method=noted.get("mcp_method"), version=noted.get("mcp_version"),
                                 era=noted.get("mcp_era"), failed=noted.get("rpc_error") is not None or status >= 400)
        return seconds
