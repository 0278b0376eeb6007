"""The Flask application factory: blueprints, limits, error handlers and the access log."""

from __future__ import annotations

import logging
import os
import time
import uuid

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from pgmcp_http.config import Settings
from pgmcp_http.observability.logs import ACCESS_LOGGER, configure_logging
from pgmcp_http.protocol.errors import INTERNAL_ERROR, INVALID_REQUEST
from pgmcp_http.runtime import Runtime
from pgmcp_http.web import auth, mcp, metrics, probes, rest
from pgmcp_http.web.disconnect import DisconnectWatcher, WatchDisconnects
from pgmcp_http.web.http import json_response
from pgmcp_http.web.identity import IDENTITIES_KEY, Identities
from pgmcp_http.web.jwt_callers import JWT_CALLERS_KEY, JwtCallers
from pgmcp_http.web.mcp import rpc_error

__all__ = ["create_app", "secrets_of"]

log = logging.getLogger(__name__)
access_log = logging.getLogger(ACCESS_LOGGER)


def secrets_of(settings: Settings) -> list[str]:
    """Values that must never appear in a log line (see Settings.secret_values)."""
    return settings.secret_values()


def create_app(settings: Settings, *, configure_logs: bool = True) -> Flask:
    """Build the app. The database pool is not opened here but in each worker, after fork."""
    if configure_logs:
        configure_logging(settings.log_level, secrets_of(settings))
    app = Flask("pgmcp_http")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.config["PGMCP_STARTED_AT"] = time.time()
    runtime = app.extensions["pgmcp"] = Runtime(settings)
    tokens = app.extensions[auth.TOKENS_KEY] = auth.TokenSet(settings.auth_tokens, settings.auth_entries)
    app.extensions[IDENTITIES_KEY] = Identities(tokens.callers, app.extensions["pgmcp"].roles)
    if settings.jwt is not None:
        app.extensions[JWT_CALLERS_KEY] = JwtCallers(settings.jwt, app.extensions["pgmcp"].roles)
    app.register_blueprint(mcp.bp)
    app.register_blueprint(rest.bp)
    app.register_blueprint(probes.bp)
    app.register_blueprint(metrics.bp)
    metrics.init_http_metrics(app)
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    # A client that hangs up mid-call gets its statement cancelled (see web/disconnect.py).
    watcher = DisconnectWatcher(cancel=lambda thread_id: runtime.database().pool.cancel_held_by(thread_id))
    app.extensions["pgmcp.disconnects"] = watcher
    app.wsgi_app = WatchDisconnects(app.wsgi_app, watcher)  # type: ignore[method-assign]
    _warn_about(settings)
    return app


def _warn_about(settings: Settings) -> None:
    if settings.session_secret_generated:
        log.warning("SESSION_SECRET is not set: generated a random one for this container; MCP sessions will "
                    "not survive a restart and other replicas will not accept them (set SESSION_SECRET)")
    if settings.ignored_url_parameters:
        log.warning("ignoring DATABASE_URL parameters %s: use MAX_CONNECTIONS and POOL_* instead",
                    ", ".join(settings.ignored_url_parameters))
    if not settings.read_only:
        log.warning("READ_ONLY=false: the query tool may INSERT, UPDATE, DELETE and MERGE")
    if not settings.auth_tokens and not settings.auth_entries and settings.jwt is None:
        log.warning("AUTH_TOKENS is not set: anyone who can reach port %s can call the tools and read the "
                    "database; set AUTH_TOKENS (or AUTH_TOKENS_FILE), and REQUIRE_AUTH=true to make this an error",
                    settings.port)


def _start_request() -> None:
    g.started = time.perf_counter()
    incoming = request.headers.get("X-Request-Id", "")
    g.request_id = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex


def _finish_request(response: Response) -> Response:
    response.headers["X-Request-Id"] = g.get("request_id", "")
    duration_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    noted = g.get("log_fields", {})
    fields = {"request_id": g.get("request_id"), "method": request.method, "path": request.path,
              "status": response.status_code, "duration_ms": round(duration_ms, 2), "worker_pid": os.getpid(),
              **noted}
    access_log.info("request", extra=fields)
    current_app.extensions["pgmcp"].metrics.rpc_request(
        method=noted.get("mcp_method"), version=noted.get("mcp_version"), era=noted.get("mcp_era"),
        failed=noted.get("rpc_error") is not None or response.status_code >= 400)
    return response


def _too_large(exc: RequestEntityTooLarge) -> Response:
    return rpc_error(413, INVALID_REQUEST, "the request body is larger than MAX_REQUEST_BYTES allows")


def _http_error(exc: HTTPException) -> Response:
    return json_response({"error": exc.description or exc.name}, exc.code or 500)


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error", extra={"request_id": g.get("request_id")})
    return rpc_error(500, INTERNAL_ERROR, f"internal error (request id {g.get('request_id')}); "
                                          "the server log has the details")
