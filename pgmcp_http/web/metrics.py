"""``GET /metrics``: the container's Prometheus metrics, and HTTP metrics per route.

Whichever worker answers the scrape reads every process's figures from the
multiprocess directory. Before that it refreshes what only it can: its own
memory, and ``postgres_mcp_database_connected`` through the health probe, so a
scrape always carries a current verdict on PostgreSQL.

HTTP request counts and latencies come from prometheus-flask-exporter,
labelled by route (``/mcp``), never by raw path: a scanner requesting random
URLs must not create a time series per URL. With METRICS_TOKEN set, a scrape
must send ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Flask, Request, Response, request
from prometheus_flask_exporter import PrometheusMetrics

from pgmcp_http.web.http import json_response, runtime
from pgmcp_http.web.probes import probe_database

__all__ = ["bp", "init_http_metrics"]

bp = Blueprint("metrics", __name__)

UNMATCHED_ROUTE = "(unmatched)"


def route(req: Request) -> str:
    """The label for an HTTP request: its URL rule, or one value for every path that matched none."""
    return req.url_rule.rule if req.url_rule is not None else UNMATCHED_ROUTE


def init_http_metrics(app: Flask) -> PrometheusMetrics:
    """HTTP request totals, exceptions and latencies per method, route and status, in the app's registry."""
    return PrometheusMetrics(app, path=None, registry=app.extensions["pgmcp"].metrics.registry, group_by=route,
                             buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))


def _authorized(token: str | None) -> bool:
    if token is None:
        return True
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode())


@bp.get("/metrics")
@PrometheusMetrics.do_not_track()
def metrics() -> Response:
    rt = runtime()
    if not _authorized(rt.settings.metrics_token):
        return json_response({"error": "GET /metrics needs the header `Authorization: Bearer <METRICS_TOKEN>`"},
                             401, {"WWW-Authenticate": 'Bearer realm="metrics"'})
    probe_database(rt)
    rt.sampler.sample()
    payload, content_type = rt.metrics.exposition(request.headers.get("Accept"))
    return Response(payload, status=200, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
