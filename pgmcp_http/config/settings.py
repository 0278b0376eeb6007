"""The validated configuration, :class:`Settings`, and :func:`load_settings`, which reads it once.

Each area module checks its own variables (they are declared, with their help, in
:mod:`pgmcp_http.config.variables`); this one puts the answers together in the order
that makes the first mistake the one reported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from psycopg2.extensions import parse_dsn

from pgmcp_http.config import database, deployment, http, identity, limits, oauth, observability
from pgmcp_http.config.identity import JwtSettings, TokenEntry
from pgmcp_http.config.oauth import OAuthSettings
from pgmcp_http.config.reader import ConfigError, Reader

__all__ = ["Settings", "load_settings", "settings_or_exit"]


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the server needs to know, validated. Durations are in milliseconds."""

    database_url: str = field(repr=False)
    read_only: bool = True
    max_connections: int = 10
    query_timeout_ms: int = 30_000
    health_check_enabled: bool = True
    health_check_timeout_ms: int = 2_000
    host: str = "0.0.0.0"
    port: int = 3401
    log_level: str = "INFO"
    slow_query_ms: int = 1_000
    metrics_token: str | None = field(default=None, repr=False)
    metrics_dir: str | None = None
    pool_idle_timeout_ms: int = 30_000
    pool_connection_timeout_ms: int = 2_000
    pool_statement_timeout_ms: int = 30_000
    rollback_delay_ms: int = 5
    ssl_mode: str | None = None
    ssl_cert_path: str | None = None
    ssl_key_path: str | None = None
    ssl_ca_path: str | None = None
    max_query_length: int = 10_000
    allowed_schemas: tuple[str, ...] = ()
    blocked_tables: tuple[str, ...] = ()
    allowed_definer_functions: tuple[str, ...] = ()
    definer_check_cache_ms: int = 2_000
    lineage_check_cache_ms: int = 2_000
    db_auth: str = "password"
    database_url_file: str | None = None
    db_password_file: str | None = None
    aws_region: str | None = None
    max_rows: int = 1000
    max_result_bytes: int = 1_048_576
    tools_file: str | None = None
    disabled_tools: tuple[str, ...] = ()
    max_replica_lag_s: float | None = None
    max_query_cost: float | None = None
    max_estimated_rows: float | None = None
    caller_max_concurrent: int | None = None
    caller_rate_limit: int | None = None
    workers: int = 2
    threads: int = 4
    session_secret: bytes = field(default=b"", repr=False)
    session_secret_generated: bool = False
    session_ttl_s: int = 86_400
    allowed_origins: tuple[str, ...] = ()
    auth_tokens: tuple[str, ...] = field(default=(), repr=False)
    auth_header: str = "X-API-Key"
    require_auth: bool = False
    auth_entries: tuple[TokenEntry, ...] = field(default=(), repr=False)
    jwt: JwtSettings | None = None
    oauth: OAuthSettings | None = None
    default_role: str | None = None
    role_required: bool = False
    audit_log: str = "stdout"
    audit_sql: str = "text"
    tracing: bool = False
    tracing_service: str = "pgmcp-http"
    sqlcommenter: bool = True
    max_request_bytes: int = 1_048_576
    request_read_timeout_ms: int = 10_000
    request_queue_limit: int = 64
    federation_url: str | None = None
    federation_endpoint: str | None = None
    federation_server_id: str = "postgres-mcp-server"
    ignored_url_parameters: tuple[str, ...] = ()

    @property
    def connections_per_worker(self) -> int:
        """Each worker's share of MAX_CONNECTIONS (validated to be at least 1)."""
        return self.max_connections // self.workers

    @property
    def caller_cap(self) -> int | None:
        """The calls one caller may have running at once in a worker (None: no cap): CALLER_MAX_CONCURRENT
        when set (0 or off: None), else, when callers can be told apart (auth configured), the worker's pool
        size less one, at least 1: one caller can then never hold every connection (unless the pool has only
        one), so another caller's call finds one free instead of queueing behind a burst. Without auth every
        request is the same anonymous caller, and a cap would throttle everyone together: no default cap."""
        if self.caller_max_concurrent is not None:
            return self.caller_max_concurrent or None
        if not self.auth_configured:
            return None
        return max(1, self.connections_per_worker - 1)

    def secret_values(self) -> list[str]:
        """Values that must never appear in a log line or a response: the database password, the
        session key, the metrics token and the auth tokens."""
        found = [self.session_secret.decode("utf-8", "replace")]
        password = parse_dsn(self.database_url).get("password")
        if password:
            found.append(password)
        if self.metrics_token:
            found.append(self.metrics_token)
        found.extend(self.auth_tokens)
        found.extend(entry.token for entry in self.auth_entries if entry.token)
        if self.jwt is not None and not self.jwt.key.startswith("-----BEGIN"):
            found.append(self.jwt.key)
        if self.oauth is not None and self.oauth.introspection_client_secret:
            found.append(self.oauth.introspection_client_secret)
        return found

    @property
    def auth_configured(self) -> bool:
        """Whether any credential is required on /mcp: tokens, JWTs under a key file, or OAuth."""
        return bool(self.auth_tokens or self.auth_entries) or self.jwt is not None or self.oauth is not None

    def connect_kwargs(self) -> dict[str, str]:
        """libpq parameters from the SSL_* settings, added to those of DATABASE_URL."""
        extra: dict[str, str] = {}
        if self.ssl_mode:
            extra["sslmode"] = self.ssl_mode
        if self.ssl_cert_path:
            extra["sslcert"] = self.ssl_cert_path
        if self.ssl_key_path:
            extra["sslkey"] = self.ssl_key_path
        if self.ssl_ca_path:
            extra["sslrootcert"] = self.ssl_ca_path
        return extra


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the whole configuration; raise ConfigError on the first bad value."""
    reader = Reader(os.environ if environ is None else environ)
    database_url, ignored = database.database_url(reader)
    url_params = parse_dsn(database_url)
    ssl_mode, ssl_cert, ssl_key, ssl_ca = database.ssl(reader, url_params=url_params)
    db_auth, db_password_file, aws_region = database.db_auth(reader, url_params=url_params, ssl_mode=ssl_mode)
    read_only = reader.boolean("READ_ONLY", True)
    database.routing(url_params, read_only=read_only)
    auth_tokens, auth_entries, auth_header, require_auth = identity.auth(reader)
    jwt_settings = identity.jwt(reader)
    oauth_settings = oauth.oauth(reader)
    if jwt_settings is None and oauth_settings is None:
        identity.claim_rules(reader, tokens_checked=False)
    claimed = any(rules is not None and rules.role_claim is not None for rules in (jwt_settings, oauth_settings))
    default_role, role_required = identity.roles(reader, auth_entries, claimed=claimed)
    audit_log, audit_sql = identity.audit(reader)
    federation_url, federation_endpoint, federation_server_id = deployment.federation(reader)

    ms = " (milliseconds)"
    query_timeout = reader.integer("QUERY_TIMEOUT", 30_000, minimum=1, unit=ms)
    max_connections = reader.integer("MAX_CONNECTIONS", 10, minimum=1, maximum=10_000)
    workers = reader.integer("WEB_CONCURRENCY", 2, minimum=1, maximum=256)
    if max_connections < workers:
        raise ConfigError(
            f"MAX_CONNECTIONS={max_connections} is less than WEB_CONCURRENCY={workers}: every worker needs "
            "at least one connection; raise MAX_CONNECTIONS or lower WEB_CONCURRENCY"
        )

    session_secret, session_secret_generated = http.session_secret(reader)

    return Settings(
        database_url=database_url,
        ignored_url_parameters=ignored,
        read_only=read_only,
        max_connections=max_connections,
        query_timeout_ms=query_timeout,
        health_check_enabled=reader.boolean("HEALTH_CHECK_ENABLED", True),
        health_check_timeout_ms=reader.integer("HEALTH_CHECK_TIMEOUT", 2_000, minimum=100, maximum=60_000, unit=ms),
        host=reader.raw("BIND_HOST") or "0.0.0.0",
        port=http.port(reader),
        log_level=reader.choice("LOG_LEVEL", observability.LOG_LEVELS) or "INFO",
        slow_query_ms=reader.integer("SLOW_QUERY_MS", 1_000, minimum=0, unit=ms),
        metrics_token=observability.metrics_token(reader),
        metrics_dir=observability.metrics_dir(reader),
        pool_idle_timeout_ms=reader.integer("POOL_IDLE_TIMEOUT", 30_000, minimum=1_000, unit=ms),
        pool_connection_timeout_ms=reader.integer("POOL_CONNECTION_TIMEOUT", 2_000, minimum=1, unit=ms),
        pool_statement_timeout_ms=reader.integer("POOL_STATEMENT_TIMEOUT", 30_000, minimum=1, unit=ms),
        rollback_delay_ms=reader.integer("ROLLBACK_DELAY_MS", 5, minimum=0, maximum=1_000, unit=ms),
        ssl_mode=ssl_mode,
        ssl_cert_path=ssl_cert,
        ssl_key_path=ssl_key,
        ssl_ca_path=ssl_ca,
        max_query_length=reader.integer("MAX_QUERY_LENGTH", 10_000, minimum=1, maximum=10_000_000),
        allowed_schemas=reader.names("ALLOWED_SCHEMAS"),
        blocked_tables=reader.names("BLOCKED_TABLES", qualified=True),
        allowed_definer_functions=reader.names("ALLOWED_DEFINER_FUNCTIONS", qualified=True, what="function"),
        definer_check_cache_ms=reader.integer("DEFINER_CHECK_CACHE", 2_000, minimum=0, maximum=600_000, unit=ms),
        lineage_check_cache_ms=reader.integer("LINEAGE_CHECK_CACHE", 2_000, minimum=0, maximum=600_000, unit=ms),
        db_auth=db_auth,
        database_url_file=reader.raw("DATABASE_URL_FILE"),
        db_password_file=db_password_file,
        aws_region=aws_region,
        max_rows=reader.integer("MAX_ROWS", 1000, minimum=1, maximum=1_000_000),
        max_result_bytes=reader.integer("MAX_RESULT_BYTES", 1_048_576, minimum=1024, maximum=64 * 1_048_576),
        tools_file=reader.path("TOOLS_FILE"),
        disabled_tools=limits.disabled_tools(reader),
        max_replica_lag_s=reader.positive_number("MAX_REPLICA_LAG"),
        max_query_cost=reader.positive_number("MAX_QUERY_COST"),
        max_estimated_rows=reader.positive_number("MAX_ESTIMATED_ROWS"),
        caller_max_concurrent=limits.caller_max_concurrent(reader),
        caller_rate_limit=limits.caller_rate_limit(reader),
        workers=workers,
        threads=reader.integer("THREADS", 4, minimum=1, maximum=256),
        session_secret=session_secret,
        session_secret_generated=session_secret_generated,
        session_ttl_s=reader.integer("SESSION_TTL", 86_400, minimum=60, unit=" (seconds)"),
        allowed_origins=http.allowed_origins(reader),
        max_request_bytes=reader.integer("MAX_REQUEST_BYTES", 1_048_576, minimum=1024, maximum=64 * 1_048_576),
        request_read_timeout_ms=reader.integer("REQUEST_READ_TIMEOUT", 10_000, minimum=100, maximum=600_000, unit=ms),
        request_queue_limit=reader.integer("REQUEST_QUEUE_LIMIT", 64, minimum=1, maximum=100_000),
        auth_tokens=auth_tokens,
        auth_header=auth_header,
        require_auth=require_auth,
        auth_entries=auth_entries,
        jwt=jwt_settings,
        oauth=oauth_settings,
        default_role=default_role,
        role_required=role_required,
        audit_log=audit_log,
        audit_sql=audit_sql,
        tracing=observability.tracing(reader),
        tracing_service=reader.raw("OTEL_SERVICE_NAME") or "pgmcp-http",
        sqlcommenter=reader.boolean("SQLCOMMENTER", True),
        federation_url=federation_url,
        federation_endpoint=federation_endpoint,
        federation_server_id=federation_server_id,
    )


def settings_or_exit(environ: Mapping[str, str] | None = None) -> Settings:
    """load_settings for entry points: a ConfigError becomes one line on stderr and exit status 1."""
    try:
        return load_settings(environ)
    except ConfigError as exc:
        raise SystemExit(f"pgmcp-http: configuration error: {exc}") from None
