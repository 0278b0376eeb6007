"""The Flask application factory: blueprints, limits, error handlers and the access log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from pgmcp_http.auth.gate import build_gate
from pgmcp_http.config import Settings
from pgmcp_http.fairshare import FairShare
from pgmcp_http.observability.logs import configure_logging
from pgmcp_http.protocol.errors import INTERNAL_ERROR, INVALID_REQUEST
from pgmcp_http.runtime import Runtime
from pgmcp_http.serving.disconnect import DisconnectWatcher, WatchDisconnects
from pgmcp_http.web import auth, metrics, probes, rest
from pgmcp_http.web.access import AccessLog, HttpSeries
from pgmcp_http.web.exchange import begin, current, finish
from pgmcp_http.web.http import BODY_TOO_LARGE, FAIR_SHARE_KEY, json_response
from pgmcp_http.web.mcp import PATH, McpEndpoint, rpc_error_body
from pgmcp_http.web.wellknown import register_metadata

__all__ = ["create_app", "secrets_of"]

log = logging.getLogger(__name__)
ACCESS_KEY = "pgmcp.access"


def secrets_of(settings: Settings) -> list[str]:
    """Values that must never appear in a log line (see Settings.secret_values)."""
    return settings.secret_values()


def create_app(settings: Settings, *, configure_logs: bool = True) -> Flask:
    """Build the app. The database pool is not opened here but in each worker, after fork."""
    if configure_logs:
        configure_logging(settings.log_level, secrets_of(settings), request_id=_request_id)
    app = Flask("pgmcp_http")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.config["PGMCP_STARTED_AT"] = time.time()
    runtime = app.extensions["pgmcp"] = Runtime(settings)
    gate = app.extensions[auth.GATE_KEY] = build_gate(settings, runtime.roles,
                                                      [spec.name for spec in runtime.toolbox.specs()])
    access = app.extensions[ACCESS_KEY] = AccessLog(runtime.metrics, secrets_of(settings))
    # Built here, in the master before fork (where no call is served): each worker counts its own callers.
    shares = app.extensions[FAIR_SHARE_KEY] = FairShare(max_concurrent=settings.caller_cap,
                                                        rate_per_minute=settings.caller_rate_limit,
                                                        workers=settings.workers)
    app.register_blueprint(rest.bp)
    app.register_blueprint(probes.bp)
    app.register_blueprint(metrics.bp)
    if settings.oauth is not None:
        register_metadata(app, settings.oauth)
    metrics.init_http_metrics(app)
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.teardown_request(_end_request)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    endpoint = McpEndpoint(runtime, gate, access, HttpSeries(runtime.metrics.registry, PATH, runtime.metrics.batch),
                           body_limit=settings.max_request_bytes, shares=shares)
    # A client that hangs up mid-call gets its statement cancelled (see serving/disconnect.py).
    watcher = DisconnectWatcher(cancel=lambda thread_id: runtime.database().pool.cancel_held_by(thread_id))
    app.extensions["pgmcp.disconnects"] = watcher
    app.wsgi_app = WatchDisconnects(_route(endpoint, app.wsgi_app), watcher)  # type: ignore[method-assign]
    _warn_about(settings)
    return app


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _route(mcp: WsgiApp, flask_app: WsgiApp) -> WsgiApp:
    """``/mcp`` to its plain WSGI endpoint, every other path to Flask."""
    def route(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == PATH:
            return mcp(environ, start_response)
        return flask_app(environ, start_response)
    return route


def _request_id() -> str | None:
    exchange = current()
    return exchange.request_id if exchange is not None else None


def _warn_about(settings: Settings) -> None:
    if settings.session_secret_generated:
        log.warning("SESSION_SECRET is not set: generated a random one for this container; MCP sessions will "
                    "not survive a restart and other replicas will not accept them (set SESSION_SECRET)")
    if settings.ignored_url_parameters:
        log.warning("ignoring DATABASE_URL parameters %s: use MAX_CONNECTIONS and POOL_* instead",
                    ", ".join(settings.ignored_url_parameters))
    if not settings.read_only:
        log.warning("READ_ONLY=false: the query tool may INSERT, UPDATE, DELETE and MERGE")
    if not settings.auth_configured:
        log.warning("AUTH_TOKENS is not set: anyone who can reach port %s can call the tools and read the "
                    "database; set AUTH_TOKENS (or AUTH_TOKENS_FILE), and REQUIRE_AUTH=true to make this an error",
                    settings.port)


def _start_request() -> None:
    begin(request.headers.get("X-Request-Id"))


def _finish_request(response: Response) -> Response:
    exchange = current()
    if exchange is not None:
        response.headers["X-Request-Id"] = exchange.request_id
        access: AccessLog = current_app.extensions[ACCESS_KEY]
        access.record(exchange, method=request.method, path=request.path, status=response.status_code)
    return response


def _end_request(exc: BaseException | None) -> None:
    exchange = current()
    if exchange is not None:
        finish(exchange)


def _too_large(exc: RequestEntityTooLarge) -> Response:
    return json_response(rpc_error_body(INVALID_REQUEST, BODY_TOO_LARGE), 413)


def _http_error(exc: HTTPException) -> Response:
    return json_response({"error": exc.description or exc.name}, exc.code or 500)


def _unexpected(exc: Exception) -> Response:
    request_id = _request_id()
    log.exception("unhandled error", extra={"request_id": request_id})
    return json_response(rpc_error_body(INTERNAL_ERROR, f"internal error (request id {request_id}); "
                                                        "the server log has the details"), 500)
