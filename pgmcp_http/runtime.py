"""Everything the server is made of, built once from the settings and owned by the app.

The database handle is per process: it is created on first use in each
gunicorn worker (or eagerly by the ``post_fork`` hook), never in the master
and never shared across a fork. That pool and the metrics are the only
mutable state here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import replace

import psycopg2
import psycopg2.extensions as ext
from mcp_types import methods as wire

from pgmcp_http import SERVICE_NAME, __version__, process
from pgmcp_http.catalog import role_warnings
from pgmcp_http.catalog.definers import DefinerCache
from pgmcp_http.catalog.lineage import LineageCache
from pgmcp_http.completions import Completions
from pgmcp_http.config import Settings, clean_database_url
from pgmcp_http.db import Canceller, ConnectOptions, Database, DatabaseError, Pool, Probe, RowLimits, open_connection
from pgmcp_http.db.credentials import ConnectionSecrets, connection_secrets
from pgmcp_http.db.login_role import login_role_refusal, startup_report
from pgmcp_http.db.nodes import role_now
from pgmcp_http.db.replica_lag import LagWatch
from pgmcp_http.db.routing import fits, hosts, requested, session_attrs
from pgmcp_http.identity import RolePolicy
from pgmcp_http.observability.audit import AuditTrail
from pgmcp_http.observability.cgroup import memory_limit_bytes
from pgmcp_http.observability.memory import memory_usage
from pgmcp_http.observability.metrics import Metrics
from pgmcp_http.observability.sampler import ProcessSampler
from pgmcp_http.observability.slowlog import SlowCallLog
from pgmcp_http.observability.tracing import Tracing
from pgmcp_http.prompts import Prompts
from pgmcp_http.protocol import Dispatcher, McpServer, ServerIdentity, SessionCodec
from pgmcp_http.protocol.cancellation import RequestTags
from pgmcp_http.protocol.versions import HANDSHAKE_VERSIONS, MODERN_VERSIONS
from pgmcp_http.resources import Resources
from pgmcp_http.sqlguard import Guard, GuardPolicy
from pgmcp_http.tools import Toolbox, ToolContext, builtin_tools, server_tools
from pgmcp_http.tools.custom import custom_tools
from pgmcp_http.tools.spec import CostCeiling

__all__ = ["CURATED_INSTRUCTIONS", "INSTRUCTIONS", "Runtime", "connect_options"]

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Read-only access to a PostgreSQL database. Start with list_tables, then describe_table for the tables "
    "you need; write one SELECT per query call with $1..$n params for values; use analyze_query to see why "
    "a query is slow. Results are capped (see `truncated`): prefer aggregates and LIMIT."
)
CURATED_INSTRUCTIONS = (
    "Access to a PostgreSQL database through the tools listed here; free-form SQL is switched off on this "
    "server. Pick the tool whose description fits the question and pass its typed arguments. Results are "
    "capped (see `truncated`)."
)


def connect_options(settings: Settings) -> ConnectOptions:
    """How every connection of this server is opened: the pool's, and the start-up check of TOOLS_FILE."""
    return ConnectOptions(
        dsn=settings.database_url,
        secrets=secrets_for(settings).current,
        libpq_params=settings.connect_kwargs(),
        connect_timeout_s=-(-settings.pool_connection_timeout_ms // 1000),
        read_only=settings.read_only,
        statement_timeout_ms=settings.pool_statement_timeout_ms,
        idle_in_transaction_timeout_ms=max(60_000, 2 * settings.pool_statement_timeout_ms),
    )


def secrets_for(settings: Settings) -> ConnectionSecrets:
    """Where new connections get their DSN and password (DB_AUTH, DATABASE_URL_FILE, DB_PASSWORD_FILE)."""
    return connection_secrets(mode=settings.db_auth, dsn=settings.database_url, url_file=settings.database_url_file,
                              password_file=settings.db_password_file, region=settings.aws_region,
                              clean_url=clean_database_url)


class Runtime:
    """The app's parts: guard, tools, resources, protocol, and the per-process database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started_at = time.time()
        self.memory_limit = memory_limit_bytes()
        self.policy = GuardPolicy(
            read_only=settings.read_only,
            allowed_schemas=settings.allowed_schemas,
            blocked_tables=settings.blocked_tables,
            allowed_definer_functions=settings.allowed_definer_functions,
            max_length=settings.max_query_length,
        )
        self.guard = Guard(self.policy)
        self.roles = _role_policy(settings)
        self.context = ToolContext(
            guard=self.guard,
            policy=self.policy,
            limits=RowLimits(max_rows=settings.max_rows, max_bytes=settings.max_result_bytes),
            read_only=settings.read_only,
            ceiling=CostCeiling(max_cost=settings.max_query_cost, max_rows=settings.max_estimated_rows),
            definers=DefinerCache(ttl_s=settings.definer_check_cache_ms / 1000),
            lineage=LineageCache(ttl_s=settings.lineage_check_cache_ms / 1000),
            roles_mapped=self.roles.mapped,
        )
        # TOOLS_FILE is checked here, in the gunicorn master before fork (preload_app), on a connection
        # of its own that is closed again; ToolsFileError stops start-up (see wsgi.py).
        custom = custom_tools(settings, context=self.context,
                              reserved=[spec.name for spec in builtin_tools(read_only=settings.read_only)],
                              connect=lambda: open_connection(connect_options(settings)))
        tools = server_tools(read_only=settings.read_only, disabled=settings.disabled_tools, custom=custom)
        self.metrics = Metrics(
            multiprocess_dir=settings.metrics_dir,
            tools=[spec.name for spec in tools],
            methods=wire.SPEC_CLIENT_METHODS | wire.SPEC_CLIENT_NOTIFICATION_METHODS,
            versions=(*HANDSHAKE_VERSIONS, *MODERN_VERSIONS),
            slow_query_ms=settings.slow_query_ms,
            memory_limit=self.memory_limit,
        )
        self.sampler = ProcessSampler(measure=memory_usage, publish=self.metrics.publish_process)
        if self.roles.mapped:
            self._check_login_role()
        if not settings.read_only:
            self._check_writable()
        self.audit = AuditTrail(target=settings.audit_log, sql=settings.audit_sql, secrets=settings.secret_values())
        self.tracing = Tracing(enabled=settings.tracing, service_name=settings.tracing_service,
                               sqlcommenter=settings.sqlcommenter, version=__version__)
        self.probe = Probe(dsn=settings.database_url, libpq_params=settings.connect_kwargs(),
                           secrets=secrets_for(settings).current, read_only=settings.read_only,
                           timeout_s=settings.health_check_timeout_ms / 1000)
        self.toolbox = Toolbox(
            tools,
            database=self.database,
            context=self.context,
            observers=(self.metrics, SlowCallLog(settings.slow_query_ms)),
            tracer=self.tracing,
        )
        self.resources = Resources(database=self.database, visibility=self.context.visibility)
        self.server = McpServer(
            identity=ServerIdentity(name=SERVICE_NAME, title="PostgreSQL MCP Server", version=__version__,
                                    instructions=INSTRUCTIONS if any(spec.name == "query" for spec in tools)
                                    else CURATED_INSTRUCTIONS),
            tools=self.toolbox,
            resources=self.resources,
            prompts=Prompts(schema_allowed=self.policy.schema_allowed),
            completions=Completions(database=self.database, visibility=self.context.visibility),
        )
        self.sessions = SessionCodec(settings.session_secret, ttl_s=settings.session_ttl_s)
        self.dispatcher = Dispatcher(
            self.server, self.sessions, tags=RequestTags(settings.session_secret),
            canceller=Canceller(dsn=settings.database_url, libpq_params=settings.connect_kwargs(),
                                secrets=secrets_for(settings).current,
                                timeout_s=settings.pool_connection_timeout_ms / 1000))
        self._database: Database | None = None
        self._database_pid = 0
        self._lock = threading.Lock()

    def database(self) -> Database:
        """This process's database handle, created on first use after fork."""
        pid = process.pid()
        if self._database is None or self._database_pid != pid:
            with self._lock:
                if self._database is None or self._database_pid != pid:
                    self._database = self._open_database()
                    self._database_pid = pid
        return self._database

    def _open_database(self) -> Database:
        settings = self.settings
        options = connect_options(settings)
        attrs = session_attrs(options.dsn, options.libpq_params, read_only=options.read_only)
        lag = LagWatch(max_lag_s=settings.max_replica_lag_s, observer=self.metrics.replica_measured)
        # While a standby is too far behind, new connections go to the primary, where the URL allows it (more
        # than one host, and a target that accepts a primary).
        places = max(1, len(hosts(options.dsn, options.libpq_params)))
        to_primary = replace(options, libpq_params={**options.libpq_params, "target_session_attrs": "primary"}) \
            if places > 1 and requested(options.dsn, options.libpq_params) in (None, "", "any", "prefer-standby") \
            else options

        def keep(conn: ext.connection) -> bool:
            """Whether a connection still fits DATABASE_URL's target_session_attrs after a call."""
            return fits(attrs, opened_role=conn.node.role, role_now=role_now(conn),
                        age_s=time.monotonic() - conn.opened_at)

        pool = Pool(
            connect=lambda: self._connect(to_primary if lag.avoiding() else options),
            size=settings.connections_per_worker,
            acquire_timeout_s=settings.pool_connection_timeout_ms / 1000,
            idle_timeout_s=settings.pool_idle_timeout_ms / 1000,
            rollback_delay_s=settings.rollback_delay_ms / 1000,
            observer=self.metrics,
            keep=keep,
        )
        log.info("database pool ready", extra={"pool_size": pool.size, "pid": os.getpid()})
        return Database(pool=pool, read_only=settings.read_only, timeout_ms=settings.query_timeout_ms,
                        search_path=settings.allowed_schemas, lag=lag, hosts=places)

    def _connect(self, options: ConnectOptions) -> ext.connection:
        """A new pooled connection; with per-caller roles, refused (fail closed) when its login role turns
        out to be a superuser or BYPASSRLS, whatever the start-up check could see."""
        conn = open_connection(options)
        if self.roles.mapped:
            refusal = login_role_refusal(conn, self.roles.roles)
            if refusal is not None:
                conn.close()
                raise psycopg2.OperationalError(refusal)
        return conn

    def _check_login_role(self) -> None:
        """In the master, before fork: stop start-up if the login role could read past every caller's role;
        warn of caller roles it cannot switch to. An unreachable database is only noted (each new
        connection is checked again anyway)."""
        settings = self.settings
        try:
            report = startup_report(dsn=settings.database_url, libpq_params=settings.connect_kwargs(),
                                    timeout_s=settings.pool_connection_timeout_ms / 1000, roles=self.roles.roles)
        except psycopg2.Error as exc:
            log.warning("per-caller roles: the login role could not be checked at start-up (%s); every new "
                        "connection is checked before use", str(exc).strip().splitlines()[0] if str(exc) else exc)
            return
        if report.refusal is not None:
            raise SystemExit(f"pgmcp-http: configuration error: {report.refusal}")
        for warning in report.warnings:
            log.warning(warning)

    def _check_writable(self) -> None:
        """Write mode, in the master before fork: stop start-up when every host DATABASE_URL names answers as
        a standby (libpq, asked for a read-write session, refused each); an unreachable database is only
        noted, as everywhere else (the server starts and reports it on /readyz)."""
        try:
            open_connection(connect_options(self.settings)).close()
        except psycopg2.OperationalError as exc:
            reason = str(exc).strip().splitlines()
            if any("session is read-only" in line or "is in hot standby mode" in line for line in reason):
                raise SystemExit(
                    "pgmcp-http: configuration error: READ_ONLY=false needs a primary (a read-write node), but "
                    f"every host in DATABASE_URL answered as a standby or a read-only session ({reason[0]}); "
                    "point DATABASE_URL at the primary (or list it among the hosts), or set READ_ONLY=true"
                ) from None
            log.warning("write mode: the database could not be reached at start-up (%s); the server starts and "
                        "every new connection insists on a read-write node", reason[0] if reason else exc)
        except DatabaseError as exc:  # a cloud IAM token could not be made
            log.warning("write mode: the database could not be checked at start-up (%s)", exc)

    def start_worker(self) -> None:
        """Publish this worker's share of the container's figures (call once, after fork); start tracing."""
        self.metrics.process_started(started_at=self.started_at, memory_limit=self.memory_limit, worker=True)
        self.sampler.start()
        self.tracing.start_worker()

    def start_master(self) -> None:
        """Publish the master's memory once (it serves nothing, so its figure hardly moves)."""
        self.metrics.process_started(started_at=self.started_at, memory_limit=self.memory_limit, worker=False)
        self.sampler.sample()

    def audit_role(self) -> None:
        """Log a warning for each risk the connected role carries (superuser, write privileges...).

        Run once per server in the background by the first worker; an
        unreachable database is only noted, since the server starts without it.
        """
        try:
            with self.database().transaction(timeout_setting="role check") as tx:
                warnings = role_warnings(tx, read_only=self.settings.read_only)
        except DatabaseError as exc:
            log.info("database role not checked at start-up", extra={"reason": str(exc)})
            return
        for warning in warnings:
            log.warning(warning)

    def close(self) -> None:
        """Close this process's pool and flush its spans (worker exit)."""
        if self._database is not None and self._database_pid == process.pid():
            self._database.close()
        self.tracing.shutdown()


def _role_policy(settings: Settings) -> RolePolicy:
    """Who acts as which role: the token entries' roles, DEFAULT_ROLE, the ALLOWED_ROLES a JWT or OAuth role claim
    may name, ROLE_REQUIRED. Any of them makes the login role's check (superuser, BYPASSRLS, grants) apply."""
    claimed = [role for rules in (settings.jwt, settings.oauth) if rules is not None and rules.role_claim
               for role in rules.allowed_roles]
    roles = tuple(dict.fromkeys([entry.role for entry in settings.auth_entries if entry.role]
                                + ([settings.default_role] if settings.default_role else []) + claimed))
    return RolePolicy(default_role=settings.default_role, required=settings.role_required, mapped=bool(roles),
                      roles=roles)
