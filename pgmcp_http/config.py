"""Configuration: read once from the environment into one frozen, validated object.

Every variable is declared in :data:`VARIABLES` with its default and a help
line (the README's table is checked against it). A bad value raises
:class:`ConfigError` whose message is one line naming the variable, what was
expected and what to do; the entry points turn it into a clean exit.

This module imports nothing from the rest of the package: everything else
receives a :class:`Settings` and nobody reads ``os.environ`` after start-up.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg2
import yaml
from psycopg2.extensions import parse_dsn

__all__ = ["LOOPBACK_NAMES", "TOOL_NAME", "VARIABLES", "ConfigError", "JwtSettings", "OAuthSettings", "Settings",
           "TokenEntry", "Variable", "load_settings", "settings_or_exit"]


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


@dataclass(frozen=True)
class Variable:
    """One documented environment variable."""

    name: str
    default: str
    help: str
    secret: bool = False


VARIABLES: tuple[Variable, ...] = (
    Variable("DATABASE_URL", "(none; `make run` starts a local one)",
             "libpq URL or key=value DSN of the database to serve", secret=True),
    Variable("DATABASE_URL_FILE", "", "file holding DATABASE_URL (Docker/Kubernetes secrets)"),
    Variable("READ_ONLY", "true", "refuse anything but reads; `false` allows DML committed per call"),
    Variable("MAX_CONNECTIONS", "10", "database connections for the whole container, split between workers"),
    Variable("QUERY_TIMEOUT", "30000", "ms a tool's statement may run before PostgreSQL cancels it"),
    Variable("HEALTH_CHECK_ENABLED", "true", "serve GET /health"),
    Variable("HEALTH_CHECK_TIMEOUT", "2000",
             "ms /health, /readyz and /metrics wait for PostgreSQL to answer before calling it down"),
    Variable("PORT", "3401", "TCP port to listen on (Cloud Run sets it)"),
    Variable("HEALTH_PORT", "3401", "the guide's name for PORT; PORT wins when both are set"),
    Variable("BIND_HOST", "0.0.0.0", "address to listen on"),
    Variable("LOG_LEVEL", "info", "debug, info, warning, error or critical"),
    Variable("SLOW_QUERY_MS", "1000", "ms above which a tool call is logged as slow (0 turns the line off)"),
    Variable("METRICS_TOKEN", "(none: /metrics is open)",
             "bearer token GET /metrics requires (16+ characters)", secret=True),
    Variable("METRICS_TOKEN_FILE", "", "file holding METRICS_TOKEN"),
    Variable("PROMETHEUS_MULTIPROC_DIR", "(a private temporary directory)",
             "empty directory where gunicorn processes add up their metrics; emptied at start"),
    Variable("POOL_IDLE_TIMEOUT", "30000", "ms an unused connection stays open before it is closed"),
    Variable("POOL_CONNECTION_TIMEOUT", "2000",
             "ms to wait for a free connection (and to connect) before answering 'busy'"),
    Variable("POOL_STATEMENT_TIMEOUT", "30000",
             "ms session default statement_timeout of every connection (backstop for all SQL)"),
    Variable("ENABLE_SSL", "false", "connect to PostgreSQL with TLS (SSL_MODE defaults to require)"),
    Variable("SSL_MODE", "(libpq default)", "disable, allow, prefer, require, verify-ca or verify-full"),
    Variable("SSL_CERT_PATH", "", "client certificate file (libpq sslcert)"),
    Variable("SSL_KEY_PATH", "", "client private key file (libpq sslkey); must not be group/world readable"),
    Variable("SSL_CA_PATH", "", "CA certificate file to verify the server (libpq sslrootcert)"),
    Variable("DB_AUTH", "password", "password, aws-iam (RDS IAM tokens) or gcp-iam (Cloud SQL IAM tokens)"),
    Variable("DB_PASSWORD_FILE", "", "file holding the database password, read again for every new connection"),
    Variable("AWS_REGION", "(AWS_DEFAULT_REGION)", "region of the RDS instance, for DB_AUTH=aws-iam"),
    Variable("MAX_QUERY_LENGTH", "10000", "longest SQL text accepted, in characters"),
    Variable("ALLOWED_SCHEMAS", "(all)", "comma-separated schemas tools may read; unquoted names fold to lower "
             "case, quote mixed case (`\"Sales\"`)"),
    Variable("BLOCKED_TABLES", "(none)", "comma-separated `table` or `schema.table` entries never readable, "
             "named as in SQL"),
    Variable("LINEAGE_CHECK_CACHE", "2000", "ms each worker remembers which views, partitions, parents and "
             "BEGIN ATOMIC functions return rows of a blocked table or one outside ALLOWED_SCHEMAS (0: read it on "
             "every call)"),
    Variable("DEFINER_CHECK_CACHE", "2000", "ms the list of SECURITY DEFINER functions is remembered per worker "
             "(0: read it on every call that uses a function or operator)"),
    Variable("ALLOWED_DEFINER_FUNCTIONS", "(none)", "SECURITY DEFINER functions (`name` or `schema.name`) "
             "callers may call; every other one is refused"),
    Variable("MAX_ROWS", "1000", "rows a query returns at most (the rest is reported as truncated)"),
    Variable("MAX_RESULT_BYTES", "1048576", "bytes of row data a query returns at most"),
    Variable("MAX_QUERY_COST", "(none)", "planner total cost above which a statement is refused before it runs"),
    Variable("MAX_ESTIMATED_ROWS", "(none)", "planner row estimate above which a statement is refused before it "
             "runs"),
    Variable("TOOLS_FILE", "(none)", "YAML file of custom tools: named, parameterised SQL offered as MCP tools"),
    Variable("DISABLE_TOOLS", "(none)", "comma-separated built-in tools not to offer (e.g. `query`)"),
    Variable("WEB_CONCURRENCY", "2", "gunicorn worker processes"),
    Variable("THREADS", "4", "threads per worker"),
    Variable("SESSION_SECRET", "(random per container)",
             "key that signs Mcp-Session-Id; give every replica the same one", secret=True),
    Variable("SESSION_SECRET_FILE", "", "file holding SESSION_SECRET"),
    Variable("SESSION_TTL", "86400", "seconds an MCP session id stays valid"),
    Variable("ALLOWED_ORIGINS", "(none)", "comma-separated browser Origins allowed to call /mcp"),
    Variable("AUTH_TOKENS", "(none: open, with a warning)", "comma-separated tokens accepted on /mcp and "
             "/mcp/tools/* (16+ characters each)", secret=True),
    Variable("AUTH_TOKENS_FILE", "", "file holding the tokens, one per line (`#` starts a comment), or YAML/JSON "
             "naming each caller: `name: {token or sha256, role}` (see Identity and roles)"),
    Variable("AUTH_HEADER", "X-API-Key", "header that may carry a token instead of `Authorization: Bearer`"),
    Variable("REQUIRE_AUTH", "false", "refuse to start without AUTH_TOKENS (the production manifests set it)"),
    Variable("JWT_KEY_FILE", "(none: JWTs not accepted)", "PEM public key (RS256/ES256) or file holding the HMAC "
             "secret (HS256) that bearer JWTs must be signed with"),
    Variable("JWT_ALGORITHMS", "RS256", "comma-separated algorithms JWTs may use (`RS256`, `ES256`, `HS256`...)"),
    Variable("JWT_AUDIENCE", "(required with JWT_KEY_FILE)", "the `aud` a JWT must carry"),
    Variable("JWT_ISSUER", "(any)", "the `iss` a JWT must carry"),
    Variable("SUBJECT_CLAIM", "sub", "JWT claim that names the caller (its subject)"),
    Variable("ROLE_CLAIM", "(none)", "JWT or OAuth access-token claim naming the caller's PostgreSQL role, checked "
             "against ALLOWED_ROLES"),
    Variable("ALLOWED_ROLES", "(required with ROLE_CLAIM)", "comma-separated roles a token's role claim may name"),
    Variable("OAUTH_RESOURCE", "(none: OAuth sign-in off)", "this server's canonical MCP URL as users type it "
             "(`https://db.example.com/mcp`): the `resource` of its metadata and the `aud` tokens must carry"),
    Variable("OAUTH_ISSUERS", "(required with OAUTH_RESOURCE)", "comma-separated issuer URLs of the authorization "
             "servers whose access tokens are accepted, exactly as each prints its `issuer`"),
    Variable("OAUTH_JWKS_URL", "(discovered from the issuer)", "signing-key set URL, instead of RFC 8414 / OpenID "
             "discovery (one issuer only)"),
    Variable("OAUTH_AUDIENCES", "(none)", "comma-separated extra `aud` values accepted besides OAUTH_RESOURCE (an "
             "Entra application id URI, say)"),
    Variable("OAUTH_ALGORITHMS", "RS256,ES256,PS256", "comma-separated signature algorithms access tokens may "
             "use (asymmetric only)"),
    Variable("OAUTH_TOKEN_TYPES", "at+jwt", "comma-separated JWT `typ` headers accepted (RFC 9068's `at+jwt` keeps "
             "ID tokens out); `any` accepts every one, for providers that write `JWT`"),
    Variable("OAUTH_SCOPES", "db.schema db.read", "scopes advertised in the metadata and asked for by a 401: what "
             "a client requests at sign-in"),
    Variable("OAUTH_TOOL_SCOPES", "(built-in mapping)", "`tool=scope scope,...`: the scopes a tool needs, replacing "
             "the default (catalog tools `db.schema`, the others `db.read`; a write also needs `db.write`)"),
    Variable("OAUTH_RESOURCE_NAME", "pgmcp-http", "human-readable name in the resource metadata"),
    Variable("OAUTH_JWKS_CACHE", "600", "seconds a worker keeps an issuer's signing keys before fetching them "
             "again (an unknown `kid` refetches at once, at most once per min(30 s, a quarter of this)); 10 to 86400"),
    Variable("OAUTH_FETCH_TIMEOUT", "3000", "ms a discovery, key-set or introspection request may take"),
    Variable("OAUTH_INTROSPECTION_CLIENT_ID", "(none: opaque tokens refused)", "client id this server "
             "authenticates with at the issuer's RFC 7662 introspection endpoint, to accept opaque tokens (one issuer "
             "only)"),
    Variable("OAUTH_INTROSPECTION_CLIENT_SECRET", "(required with the client id)", "its client secret",
             secret=True),
    Variable("OAUTH_INTROSPECTION_CLIENT_SECRET_FILE", "", "file holding OAUTH_INTROSPECTION_CLIENT_SECRET"),
    Variable("DEFAULT_ROLE", "(none: the login role)", "PostgreSQL role for callers whose token entry names none"),
    Variable("ROLE_REQUIRED", "false", "refuse every database call of a caller that has no role"),
    Variable("AUDIT_LOG", "stdout", "where the audit trail goes: `stdout`, a file path (appended to) or `off`"),
    Variable("AUDIT_SQL", "text", "what audit records say of a statement: `text` (and fingerprint), `fingerprint` "
             "or `off`"),
    Variable("OTEL_EXPORTER_OTLP_ENDPOINT", "(none: tracing off)", "OTLP/HTTP collector base URL; setting it (or "
             "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) turns tracing on"),
    Variable("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "(none)", "full OTLP/HTTP traces URL (`.../v1/traces`)"),
    Variable("OTEL_SERVICE_NAME", "pgmcp-http", "service.name of the spans"),
    Variable("OTEL_TRACES_SAMPLER", "parentbased_always_on", "the SDK's sampler (`parentbased_traceidratio` with "
             "OTEL_TRACES_SAMPLER_ARG=0.1 keeps a tenth)"),
    Variable("OTEL_TRACES_EXPORTER", "otlp", "`none` turns tracing off; `otlp` turns it on (to localhost:4318 "
             "without an endpoint)"),
    Variable("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", "the only protocol shipped (the collector's port 4318)"),
    Variable("OTEL_SDK_DISABLED", "false", "`true` turns tracing off whatever else is set"),
    Variable("SQLCOMMENTER", "true", "with tracing on, append `/*traceparent=...,tool=...*/` to the SQL sent to "
             "PostgreSQL"),
    Variable("MAX_REQUEST_BYTES", "1048576", "largest request body accepted (413 above)"),
    Variable("REQUEST_READ_TIMEOUT", "10000", "ms a client may take to send a whole request (headers and body); "
             "slower ones are cut off (slow-loris)"),
    Variable("REQUEST_QUEUE_LIMIT", "64", "requests that may wait for a thread in each worker; more get 503 "
             "at once"),
    Variable("FEDERATION_URL", "(none: no self-registration)", "base URL of the TAS federation to register "
             "with at start-up, e.g. http://tas-mcp-federation:8080 (retried in the background)"),
    Variable("FEDERATION_ENDPOINT", "(none; required with FEDERATION_URL)", "base URL the federation calls this "
             "server at (no path), e.g. http://postgres-mcp-server:3401"),
    Variable("FEDERATION_SERVER_ID", "postgres-mcp-server", "id of this server in the federation (replicas "
             "of one service share it)"),
)

_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_LOG_LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "warning": "WARNING",
               "error": "ERROR", "critical": "CRITICAL"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# One name part, as SQL writes it: "Quoted ""Name""" (kept as is) or bare_name (folded to lower case).
_NAME_PART = re.compile(r'\s*(?:"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*))\s*')


@dataclass(frozen=True)
class TokenEntry:
    """A named caller of AUTH_TOKENS_FILE: ``name`` is its subject; only the token's SHA-256 is needed to
    recognise it (``token`` is kept, when the file gave it, so it can be redacted from logs)."""

    name: str
    sha256: bytes = field(repr=False)
    role: str | None = None
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class JwtSettings:
    """How bearer JWTs are verified and what their claims mean (JWT_* and the *_CLAIM variables)."""

    key: str = field(repr=False)
    algorithms: tuple[str, ...]
    audience: str
    issuer: str | None = None
    subject_claim: str = "sub"
    role_claim: str | None = None
    allowed_roles: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class OAuthSettings:
    """How OAuth access tokens from the identity provider are checked (the OAUTH_* variables), and the claim
    rules they share with JWT_KEY_FILE tokens."""

    resource: str
    issuers: tuple[str, ...]
    jwks_url: str | None = None
    audiences: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256")
    token_types: tuple[str, ...] | None = ("at+jwt", "application/at+jwt")
    scopes: tuple[str, ...] = ("db.schema", "db.read")
    tool_scopes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    resource_name: str = "pgmcp-http"
    jwks_cache_s: int = 600
    fetch_timeout_ms: int = 3_000
    introspection_client_id: str | None = None
    introspection_client_secret: str | None = field(default=None, repr=False)
    subject_claim: str = "sub"
    role_claim: str | None = None
    allowed_roles: tuple[str, ...] = ()

    @property
    def accepted_audiences(self) -> tuple[str, ...]:
        """Every ``aud`` value a token may carry to be for this server: the resource first."""
        return (self.resource, *self.audiences)


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
    max_query_cost: float | None = None
    max_estimated_rows: float | None = None
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


class _Reader:
    """Reads and converts variables, raising ConfigError that names the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def raw(self, name: str) -> str | None:
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def secret(self, name: str) -> str | None:
        """NAME, or the contents of the file named by NAME_FILE (never both)."""
        direct = self.raw(name)
        path = self.raw(f"{name}_FILE")
        if direct is not None and path is not None:
            raise ConfigError(f"{name} and {name}_FILE are both set; keep only one of them")
        if path is None:
            return direct
        try:
            content = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
        if not content:
            raise ConfigError(f"{name}_FILE: {path} is empty")
        return content

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{name}={value!r} is not a boolean; use true or false")

    def positive_number(self, name: str) -> float | None:
        """An optional number above zero (planner costs and row estimates are fractional)."""
        value = self.raw(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a number") from None
        if not number > 0 or number == float("inf"):
            raise ConfigError(f"{name}={value!r} must be a number above 0 (unset it for no ceiling)")
        return number

    def integer(self, name: str, default: int, *, minimum: int, maximum: int | None = None,
                unit: str = "") -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a whole number{unit}") from None
        if number < minimum or (maximum is not None and number > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise ConfigError(f"{name}={number} is out of range; it must be {bound}{unit}")
        return number

    def choice(self, name: str, choices: Mapping[str, str] | tuple[str, ...]) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        key = value.lower()
        if key not in choices:
            raise ConfigError(f"{name}={value!r} is not one of: {', '.join(choices)}")
        return choices[key] if isinstance(choices, Mapping) else key

    def names(self, name: str, *, qualified: bool = False, what: str = "table") -> tuple[str, ...]:
        """A comma-separated list of names, read the way PostgreSQL reads identifiers.

        Unquoted names fold to lower case (``App.Secrets`` is ``app.secrets``);
        double-quoted ones keep their case (``"Audit"."Log"``). Entries come
        back as stored names, ``schema.table`` when qualified.
        """
        value = self.raw(name)
        if value is None:
            return ()
        form = f"`{what}` or `schema.{what}`" if qualified else "a schema name"
        entries: list[str] = []
        for item in _split_names(value):
            parts = _name_parts(item)
            if parts is None or len(parts) > (2 if qualified else 1):
                raise ConfigError(f"{name}: {item.strip()!r} is not {form} (comma-separated; quote mixed-case "
                                  'names like "Name")')
            if any("." in part for part in parts):
                raise ConfigError(f"{name}: {item.strip()!r}: names containing a dot are not supported")
            entries.append(".".join(parts))
        return tuple(entries)

    def path(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        target = Path(value)
        if not target.is_file():
            raise ConfigError(f"{name}={value}: no such file")
        if not os.access(target, os.R_OK):
            raise ConfigError(f"{name}={value}: the file is not readable by this user")
        return value


def _split_names(value: str) -> list[str]:
    """Split on commas outside double quotes; empty entries are dropped."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item for item in items if item.strip()]


def _name_parts(item: str) -> list[str] | None:
    """``schema.table`` parts as stored by PostgreSQL, or None when ``item`` is not a dotted name."""
    parts: list[str] = []
    position = 0
    while True:
        match = _NAME_PART.match(item, position)
        if match is None:
            return None
        quoted, bare = match.groups()
        parts.append(quoted.replace('""', '"') if quoted is not None else bare.lower())
        position = match.end()
        if position == len(item):
            return parts
        if item[position] != ".":
            return None
        position += 1


def _database_url(reader: _Reader) -> tuple[str, tuple[str, ...]]:
    """DATABASE_URL, validated by libpq's own parser, minus pool_* parameters.

    The guide's examples carry driver-pool parameters (``pool_max_conns``)
    that libpq rejects; they are dropped (and reported) since MAX_CONNECTIONS
    and POOL_* say the same thing here.
    """
    url = reader.secret("DATABASE_URL")
    if url is None:
        raise ConfigError(
            "DATABASE_URL is not set; set it (or DATABASE_URL_FILE) to the database to serve, "
            "or use `make run` for a local sample database"
        )
    return _clean_url(url)


def clean_database_url(url: str) -> str:
    """A DATABASE_URL read again at run time (a rotated DATABASE_URL_FILE), cleaned and checked the same
    way as at start-up; ConfigError when it is not a connection string."""
    return _clean_url(url)[0]


def _clean_url(url: str) -> tuple[str, tuple[str, ...]]:
    ignored: list[str] = []
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        ignored = [key for key, _ in query if key.startswith("pool_")]
        kept = [(key, value) for key, value in query if not key.startswith("pool_")]
        url = urlunsplit(parts._replace(query=urlencode(kept)))
    try:
        parse_dsn(url)
    except psycopg2.ProgrammingError:
        # Not libpq's message: it quotes the part it could not read, which may be the password.
        raise ConfigError("DATABASE_URL is not a valid PostgreSQL connection string; check its form "
                          "(postgresql://user:password@host:5432/dbname) and that characters such as % @ : / in "
                          "the password are percent-encoded (% as %25)") from None
    return url, tuple(ignored)


@functools.cache
def _container_secret() -> bytes:
    """One random session key per process tree (generated in the gunicorn master, inherited)."""
    return secrets.token_bytes(32)


def _ssl(reader: _Reader, *, url_params: Mapping[str, str]) -> tuple[str | None, str | None, str | None, str | None]:
    """SSL_* as libpq parameters; they override the same parameters inside DATABASE_URL."""
    enabled = reader.boolean("ENABLE_SSL", False)
    mode = reader.choice("SSL_MODE", _SSL_MODES)
    if enabled and mode is None:
        mode = "require"
    if enabled and mode == "disable":
        raise ConfigError("SSL_MODE=disable contradicts ENABLE_SSL=true; choose one")
    cert = reader.path("SSL_CERT_PATH")
    key = reader.path("SSL_KEY_PATH")
    ca = reader.path("SSL_CA_PATH")
    if (cert is None) != (key is None):
        raise ConfigError("SSL_CERT_PATH and SSL_KEY_PATH go together; set both or neither")
    if key is not None and Path(key).stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"SSL_KEY_PATH={key}: the key is readable by group or others; chmod 600 it")
    if mode in ("verify-ca", "verify-full") and ca is None and "sslrootcert" not in url_params:
        raise ConfigError(f"SSL_MODE={mode} needs SSL_CA_PATH (or sslrootcert in DATABASE_URL), the CA "
                          "certificate to verify the server with")
    return mode, cert, key, ca


def _metrics_token(reader: _Reader) -> str | None:
    token = reader.secret("METRICS_TOKEN")
    if token is not None and (len(token) < 16 or not token.isprintable() or " " in token):
        raise ConfigError("METRICS_TOKEN must be at least 16 printable characters without spaces; "
                          "generate one with `openssl rand -hex 32`")
    return token


def _metrics_dir(reader: _Reader) -> str | None:
    value = reader.raw("PROMETHEUS_MULTIPROC_DIR")
    if value is None:
        return None
    target = Path(value)
    if not target.is_dir():
        raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR={value}: no such directory; create an empty one that only "
                          "this container uses, or unset it to let the server make a private one")
    if not os.access(target, os.W_OK | os.X_OK):
        raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR={value}: the directory is not writable by this user")
    return value


_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


def _auth(reader: _Reader) -> tuple[tuple[str, ...], tuple[TokenEntry, ...], str, bool]:
    """AUTH_TOKENS (or AUTH_TOKENS_FILE), AUTH_HEADER and REQUIRE_AUTH, checked together.

    AUTH_TOKENS_FILE holds either plain tokens (one per line or comma-separated)
    or, as YAML or JSON, named entries (:func:`_token_entries`).
    """
    raw = reader.secret("AUTH_TOKENS")
    source = "AUTH_TOKENS_FILE" if reader.raw("AUTH_TOKENS_FILE") is not None else "AUTH_TOKENS"
    entries = _token_entries(raw) if raw is not None and source == "AUTH_TOKENS_FILE" else None
    tokens: list[str] = []
    for line in (raw or "").splitlines() if entries is None else []:
        line = line.split("#", 1)[0] if source == "AUTH_TOKENS_FILE" else line
        tokens += [part.strip() for part in line.split(",") if part.strip()]
    for number, token in enumerate(tokens, start=1):
        if not _usable_token(token):
            raise ConfigError(f"{source}: token {number} must be at least 16 printable characters without spaces; "
                              "generate one with `openssl rand -hex 32`")
    header = reader.raw("AUTH_HEADER") or "X-API-Key"
    if not _HEADER_NAME.match(header) or header.lower() in ("authorization", "content-type", "host"):
        raise ConfigError(f"AUTH_HEADER={header!r} is not a usable header name (for example X-API-Key)")
    require = reader.boolean("REQUIRE_AUTH", False)
    if require and not tokens and not entries and reader.raw("JWT_KEY_FILE") is None \
            and reader.raw("OAUTH_RESOURCE") is None:
        raise ConfigError("REQUIRE_AUTH=true but no AUTH_TOKENS (or AUTH_TOKENS_FILE), JWT_KEY_FILE or "
                          "OAUTH_RESOURCE is set; give the server at least one way to know its callers")
    return tuple(dict.fromkeys(tokens)), tuple(entries or ()), header, require


def _usable_token(token: str) -> bool:
    return len(token) >= 16 and token.isprintable() and " " not in token


_SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+:-]{0,127}$")
_SHA256 = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")


def _token_entries(text: str) -> list[TokenEntry] | None:
    """Named callers from AUTH_TOKENS_FILE as YAML or JSON, or None when it is a plain token list.

    ``name: <token>`` or ``name: {token: <token> | sha256: <hex digest>, role: <role>}``;
    the name is the caller's subject. A plain list parses as one YAML string, never as a mapping.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(document, dict):
        return None
    entries: list[TokenEntry] = []
    digests: set[bytes] = set()
    for name, value in document.items():
        where = f"AUTH_TOKENS_FILE: entry {name!r}"
        if not isinstance(name, str) or not _SUBJECT.match(name) or name == "anonymous":
            raise ConfigError(f"{where}: a caller name is 1 to 128 of A-Z a-z 0-9 _ . @ + : - (and not "
                              "'anonymous'); it becomes the caller's subject")
        spec = {"token": value} if isinstance(value, str) else value
        if not isinstance(spec, dict) or not set(spec) <= {"token", "sha256", "role"} or \
                ("token" in spec) == ("sha256" in spec):
            raise ConfigError(f"{where}: write `{name}: <token>` or `{name}: {{token: ..., role: ...}}` or "
                              f"`{name}: {{sha256: <hex of the token's SHA-256>, role: ...}}` (exactly one of "
                              "token and sha256)")
        if "token" in spec:
            token = spec["token"]
            if not isinstance(token, str) or not _usable_token(token):
                raise ConfigError(f"{where}: the token must be at least 16 printable characters without spaces; "
                                  "generate one with `openssl rand -hex 32`")
            digest, secret = hashlib.sha256(token.encode("utf-8")).digest(), token
        else:
            match = _SHA256.match(str(spec["sha256"]).strip())
            if match is None:
                raise ConfigError(f"{where}: sha256 must be 64 hex digits (`printf %s TOKEN | sha256sum`)")
            digest, secret = bytes.fromhex(match.group(1)), None
        if digest in digests:
            raise ConfigError(f"{where}: the same token is given to two callers; each caller needs its own")
        digests.add(digest)
        entries.append(TokenEntry(name=name, sha256=digest, role=_role_name(spec.get("role"), where),
                                  token=secret))
    return entries


def _role_name(value: object, where: str) -> str | None:
    """A PostgreSQL role name as stored (case kept: it is quoted when used)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value.encode()) > 63 or not value.isprintable():
        raise ConfigError(f"{where}: the role must be a PostgreSQL role name (1 to 63 bytes, printable), "
                          f"not {value!r}")
    return value.strip()


_JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
                   "HS256", "HS384", "HS512")


def _claim_rules(reader: _Reader, *, tokens_checked: bool) -> tuple[str, str | None, tuple[str, ...]]:
    """SUBJECT_CLAIM, ROLE_CLAIM and ALLOWED_ROLES: what a validated token's claims mean, for key-file JWTs and
    OAuth access tokens alike. ``tokens_checked``: JWT_KEY_FILE or OAUTH_RESOURCE is set."""
    if not tokens_checked:
        for name in ("ROLE_CLAIM", "ALLOWED_ROLES"):
            if reader.raw(name) is not None:
                raise ConfigError(f"{name} is set but neither JWT_KEY_FILE nor OAUTH_RESOURCE is: tokens with claims "
                                  "are not accepted, so no claim can name a role")
    role_claim = reader.raw("ROLE_CLAIM")
    allowed = tuple(_role_name(part, "ALLOWED_ROLES") or "" for part in (reader.raw("ALLOWED_ROLES") or "").split(",")
                    if part.strip())
    if role_claim is not None and not allowed:
        raise ConfigError("ROLE_CLAIM is set but ALLOWED_ROLES is not: list the roles a token may ask for")
    return reader.raw("SUBJECT_CLAIM") or "sub", role_claim, allowed


def _jwt(reader: _Reader) -> JwtSettings | None:
    """JWT_* and the claim variables; None when JWT_KEY_FILE is unset (JWTs are then just unknown tokens)."""
    path = reader.path("JWT_KEY_FILE")
    if path is None:
        for name in ("JWT_AUDIENCE", "JWT_ISSUER"):
            if reader.raw(name) is not None:
                raise ConfigError(f"{name} is set but JWT_KEY_FILE is not; give the key JWTs are signed with")
        return None
    key = Path(path).read_text(encoding="utf-8").strip()
    algorithms = tuple(part.strip() for part in (reader.raw("JWT_ALGORITHMS") or "RS256").split(",") if part.strip())
    unknown = [name for name in algorithms if name not in _JWT_ALGORITHMS]
    if unknown or not algorithms:
        raise ConfigError(f"JWT_ALGORITHMS: {', '.join(unknown) or 'empty'} is not one of {', '.join(_JWT_ALGORITHMS)}")
    public = key.startswith("-----BEGIN")
    if public == any(name.startswith("HS") for name in algorithms):
        raise ConfigError("JWT_KEY_FILE must hold a PEM public key for RS/PS/ES/EdDSA algorithms, or an HMAC "
                          "secret (no PEM) for HS256/384/512; do not mix them in JWT_ALGORITHMS")
    if not public and len(key) < 32:
        raise ConfigError("JWT_KEY_FILE: an HMAC secret must be at least 32 characters")
    audience = reader.raw("JWT_AUDIENCE")
    if audience is None:
        raise ConfigError("JWT_KEY_FILE is set but JWT_AUDIENCE is not: name the audience JWTs must be issued for, "
                          "or a token minted for another service would be accepted")
    subject_claim, role_claim, allowed = _claim_rules(reader, tokens_checked=True)
    return JwtSettings(key=key, algorithms=algorithms, audience=audience, issuer=reader.raw("JWT_ISSUER"),
                       subject_claim=subject_claim, role_claim=role_claim, allowed_roles=allowed)


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
"""Host names of this machine: plain http is accepted for them only, and binding to one keeps browsers out."""
# RFC 6749 scope-token: printable ASCII but space, " and \ (and here not , or =, which OAUTH_TOOL_SCOPES uses).
_SCOPE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3c\x3e-\x5b\x5d-\x7e]+$")


def _web_url(name: str, value: str, *, example: str) -> str:
    """An absolute https URL (http on loopback only: tests and local runs) without query or fragment."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise ConfigError(f"{name}: {value!r} is not an https URL; for example {example}")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_NAMES:
        raise ConfigError(f"{name}: {value!r} must use https (plain http is accepted on loopback only)")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ConfigError(f"{name}: {value!r} must not have a query or a fragment")
    return value


def _canonical_resource(reader: _Reader) -> str | None:
    """OAUTH_RESOURCE as the MCP authorization spec's canonical server URI: lower-case scheme and host, no
    trailing slash, no query or fragment. Refused rather than repaired, since clients compare it byte for byte
    with the URL they were given."""
    value = reader.raw("OAUTH_RESOURCE")
    if value is None:
        return None
    _web_url("OAUTH_RESOURCE", value, example="https://db.example.com/mcp")
    parts = urlsplit(value)
    if value[:len(parts.scheme) + 3 + len(parts.netloc)] != f"{parts.scheme}://{parts.netloc}".lower():
        raise ConfigError(f"OAUTH_RESOURCE: {value!r}: write the scheme and host in lower case, as clients send them")
    if parts.path.endswith("/"):
        raise ConfigError(f"OAUTH_RESOURCE: {value!r} must not end with a slash (clients compare it exactly; "
                          "for example https://db.example.com/mcp)")
    if parts.port is not None and parts.port == {"https": 443, "http": 80}[parts.scheme]:
        raise ConfigError(f"OAUTH_RESOURCE: {value!r}: leave out the default port, as users type the URL (clients "
                          "compare it exactly)")
    return value


def _scope_list(name: str, value: str) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(value.split()))
    for scope in scopes:
        if not _SCOPE.match(scope):
            raise ConfigError(f"{name}: {scope!r} is not a scope name (printable ASCII without spaces, quotes, "
                              "backslashes, commas or =)")
    return scopes


def _advertised_scopes(reader: _Reader) -> tuple[str, ...]:
    """OAUTH_SCOPES: the baseline a client asks for at sign-in; ``offline_access`` is the client's business
    (MCP 2026-07-28 says it SHOULD NOT be advertised), so it is refused here."""
    scopes = _scope_list("OAUTH_SCOPES", reader.raw("OAUTH_SCOPES") or "db.schema db.read")
    if "offline_access" in scopes:
        raise ConfigError("OAUTH_SCOPES: leave out offline_access; clients ask for it themselves when the "
                          "authorization server offers it")
    return scopes


def _tool_scopes(reader: _Reader) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """OAUTH_TOOL_SCOPES: ``tool=scope scope`` entries separated by commas (which tools exist is checked once
    the tools are known)."""
    value = reader.raw("OAUTH_TOOL_SCOPES")
    entries: dict[str, tuple[str, ...]] = {}
    for item in (value or "").split(","):
        if not item.strip():
            continue
        tool, sep, scopes = item.partition("=")
        if not sep or not TOOL_NAME.match(tool.strip()):
            raise ConfigError(f"OAUTH_TOOL_SCOPES: {item.strip()!r} is not `tool=scope scope`; for example "
                              "OAUTH_TOOL_SCOPES=query=db.read analytics,list_tables=db.schema")
        entries[tool.strip()] = _scope_list("OAUTH_TOOL_SCOPES", scopes)
    return tuple(entries.items())


def _oauth(reader: _Reader) -> OAuthSettings | None:
    """OAUTH_*: None when OAUTH_RESOURCE is unset (then no other OAUTH_* variable may be)."""
    resource = _canonical_resource(reader)
    if resource is None:
        stray = [variable.name for variable in VARIABLES
                 if variable.name.startswith("OAUTH_") and reader.raw(variable.name) is not None]
        if stray:
            raise ConfigError(f"{stray[0]} is set but OAUTH_RESOURCE is not; set OAUTH_RESOURCE to this server's "
                              "MCP URL (https://db.example.com/mcp) to turn OAuth sign-in on")
        return None
    issuers = tuple(dict.fromkeys(_web_url("OAUTH_ISSUERS", part.strip(), example="https://login.example.com")
                                  for part in (reader.raw("OAUTH_ISSUERS") or "").split(",") if part.strip()))
    if not issuers:
        raise ConfigError("OAUTH_RESOURCE is set but OAUTH_ISSUERS is not: name the authorization server whose "
                          "tokens this server accepts, e.g. OAUTH_ISSUERS=https://login.example.com")
    jwks_url = reader.raw("OAUTH_JWKS_URL")
    if jwks_url is not None:
        _web_url("OAUTH_JWKS_URL", jwks_url, example="https://login.example.com/jwks")
        if len(issuers) > 1:
            raise ConfigError("OAUTH_JWKS_URL is for a single issuer; with several OAUTH_ISSUERS each one's keys "
                              "are found through its discovery document")
    algorithms = tuple(part.strip() for part in (reader.raw("OAUTH_ALGORITHMS") or "RS256,ES256,PS256").split(",")
                       if part.strip())
    refused = [name for name in algorithms if name not in _JWT_ALGORITHMS or name.startswith("HS")]
    if refused or not algorithms:
        raise ConfigError(f"OAUTH_ALGORITHMS: {', '.join(refused) or 'empty'} is not an asymmetric signature "
                          "algorithm (RS256, PS256, ES256, EdDSA...); a key set never holds an HMAC secret")
    types_value = (reader.raw("OAUTH_TOKEN_TYPES") or "at+jwt").lower()
    token_types = None if types_value.strip() == "any" else tuple(
        variant for part in types_value.split(",") if part.strip()
        for variant in (part.strip(), f"application/{part.strip()}"))
    secret = reader.secret("OAUTH_INTROSPECTION_CLIENT_SECRET")
    client_id = reader.raw("OAUTH_INTROSPECTION_CLIENT_ID")
    if (client_id is None) != (secret is None):
        raise ConfigError("OAUTH_INTROSPECTION_CLIENT_ID and OAUTH_INTROSPECTION_CLIENT_SECRET go together; set "
                          "both (to accept opaque tokens) or neither")
    if client_id is not None and len(issuers) > 1:
        raise ConfigError("OAUTH_INTROSPECTION_CLIENT_ID needs a single issuer in OAUTH_ISSUERS: its secret is one "
                          "issuer's, and a caller's opaque token must not be shown to another")
    subject_claim, role_claim, allowed = _claim_rules(reader, tokens_checked=True)
    return OAuthSettings(
        resource=resource, issuers=issuers, jwks_url=jwks_url,
        audiences=tuple(part.strip() for part in (reader.raw("OAUTH_AUDIENCES") or "").split(",") if part.strip()),
        algorithms=algorithms, token_types=token_types,
        scopes=_advertised_scopes(reader),
        tool_scopes=_tool_scopes(reader),
        resource_name=reader.raw("OAUTH_RESOURCE_NAME") or "pgmcp-http",
        jwks_cache_s=reader.integer("OAUTH_JWKS_CACHE", 600, minimum=10, maximum=86_400, unit=" (seconds)"),
        fetch_timeout_ms=reader.integer("OAUTH_FETCH_TIMEOUT", 3_000, minimum=100, maximum=60_000,
                                        unit=" (milliseconds)"),
        introspection_client_id=client_id, introspection_client_secret=secret,
        subject_claim=subject_claim, role_claim=role_claim, allowed_roles=allowed)


def _roles(reader: _Reader, entries: tuple[TokenEntry, ...], jwt: JwtSettings | None = None,
           oauth: OAuthSettings | None = None) -> tuple[str | None, bool]:
    """DEFAULT_ROLE and ROLE_REQUIRED, checked against the entries' roles and the tokens' role claim."""
    default = _role_name(reader.raw("DEFAULT_ROLE"), "DEFAULT_ROLE")
    required = reader.boolean("ROLE_REQUIRED", False)
    claimed = (jwt is not None and jwt.role_claim is not None) or (oauth is not None and oauth.role_claim is not None)
    if required and default is None and not claimed and not any(entry.role for entry in entries):
        raise ConfigError("ROLE_REQUIRED=true but no role is configured: set DEFAULT_ROLE or give entries of "
                          "AUTH_TOKENS_FILE a role, or every database call would be refused")
    return default, required


def _audit(reader: _Reader) -> tuple[str, str]:
    """AUDIT_LOG (stdout, off or a file path in an existing, writable directory) and AUDIT_SQL."""
    target = reader.raw("AUDIT_LOG") or "stdout"
    if target.lower() in ("stdout", "off"):
        target = target.lower()
    else:
        folder = Path(target).parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"AUDIT_LOG={target}: {folder} is not a writable directory; create it, or use "
                              "stdout or off")
    return target, reader.choice("AUDIT_SQL", ("text", "fingerprint", "off")) or "text"


def _tracing(reader: _Reader) -> bool:
    """Whether the OTEL_* variables ask for traces (OTLP over HTTP, the only exporter shipped)."""
    if reader.boolean("OTEL_SDK_DISABLED", False):
        return False
    exporter = (reader.raw("OTEL_TRACES_EXPORTER") or "").lower()
    if exporter not in ("", "otlp", "none"):
        raise ConfigError(f"OTEL_TRACES_EXPORTER={exporter!r}: this server ships the OTLP exporter only; use otlp "
                          "or none")
    protocol = reader.raw("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    endpoint = reader.raw("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or reader.raw("OTEL_EXPORTER_OTLP_ENDPOINT")
    enabled = exporter == "otlp" or (exporter == "" and endpoint is not None)
    if enabled and protocol != "http/protobuf":
        raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: this server exports over http/protobuf only "
                          "(the collector's port 4318)")
    return enabled


# MCP tool names: 1 to 128 of A-Z a-z 0-9 _ - . (the 2025-11-25 revision's rule).
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def _disabled_tools(reader: _Reader) -> tuple[str, ...]:
    """DISABLE_TOOLS as tool names; whether each names a built-in tool is checked where those are known."""
    value = reader.raw("DISABLE_TOOLS")
    if value is None:
        return ()
    names = [item.strip() for item in value.split(",") if item.strip()]
    for name in names:
        if not TOOL_NAME.match(name):
            raise ConfigError(f"DISABLE_TOOLS: {name!r} is not a tool name; list built-in tools separated by "
                              "commas, e.g. DISABLE_TOOLS=query,analyze_query")
    return tuple(dict.fromkeys(names))


def _db_auth(reader: _Reader, *, url_params: Mapping[str, str], ssl_mode: str | None,
             ) -> tuple[str, str | None, str | None]:
    """DB_AUTH, DB_PASSWORD_FILE and the AWS region, checked together."""
    mode = reader.choice("DB_AUTH", ("password", "aws-iam", "gcp-iam")) or "password"
    password_file = reader.path("DB_PASSWORD_FILE")
    region = reader.raw("AWS_REGION") or reader.raw("AWS_DEFAULT_REGION")
    if mode != "password" and (password_file is not None or url_params.get("password")):
        raise ConfigError(f"DB_AUTH={mode} makes its own passwords; remove DB_PASSWORD_FILE and the password "
                          "from DATABASE_URL")
    if mode == "aws-iam":
        if not region:
            raise ConfigError("DB_AUTH=aws-iam needs AWS_REGION (the RDS instance's region)")
        effective = ssl_mode or url_params.get("sslmode") or "prefer"
        if effective not in ("require", "verify-ca", "verify-full"):
            raise ConfigError(f"DB_AUTH=aws-iam needs TLS: sslmode is {effective}; set SSL_MODE=verify-full with "
                              "SSL_CA_PATH (the RDS CA bundle), or at least SSL_MODE=require")
    return mode, password_file, region


_SERVER_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def _http_url(reader: _Reader, name: str, *, example: str, base_only: bool) -> str | None:
    """An http(s) URL without a trailing slash; ``base_only`` refuses a path (the federation appends its own)."""
    value = reader.raw(name)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}={value!r} is not an http(s) URL; for example {example}")
    if base_only and (parts.path.strip("/") or parts.query or parts.fragment):
        raise ConfigError(f"{name}={value!r} must be a base URL without a path (the federation appends "
                          f"/mcp/tools/call and the health check path itself); for example {example}")
    return value.rstrip("/")


def _federation(reader: _Reader) -> tuple[str | None, str | None, str]:
    """FEDERATION_URL, FEDERATION_ENDPOINT and FEDERATION_SERVER_ID, checked together."""
    url = _http_url(reader, "FEDERATION_URL", example="http://tas-mcp-federation:8080", base_only=False)
    endpoint = _http_url(reader, "FEDERATION_ENDPOINT", example="http://postgres-mcp-server:3401", base_only=True)
    server_id = reader.raw("FEDERATION_SERVER_ID") or "postgres-mcp-server"
    if not _SERVER_ID.match(server_id):
        raise ConfigError(f"FEDERATION_SERVER_ID={server_id!r} must be 1 to 128 of A-Z a-z 0-9 . _ -")
    if url is not None and endpoint is None:
        raise ConfigError("FEDERATION_URL is set but FEDERATION_ENDPOINT is not; set it to the base URL the "
                          "federation should call this server at, e.g. http://postgres-mcp-server:3401")
    return url, endpoint, server_id


def _port(reader: _Reader) -> int:
    name = "PORT" if reader.raw("PORT") is not None else "HEALTH_PORT"
    return reader.integer(name, 3401, minimum=1, maximum=65535)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the whole configuration; raise ConfigError on the first bad value."""
    reader = _Reader(os.environ if environ is None else environ)
    database_url, ignored = _database_url(reader)
    ssl_mode, ssl_cert, ssl_key, ssl_ca = _ssl(reader, url_params=parse_dsn(database_url))
    db_auth, db_password_file, aws_region = _db_auth(reader, url_params=parse_dsn(database_url), ssl_mode=ssl_mode)
    auth_tokens, auth_entries, auth_header, require_auth = _auth(reader)
    jwt_settings = _jwt(reader)
    oauth_settings = _oauth(reader)
    if jwt_settings is None and oauth_settings is None:
        _claim_rules(reader, tokens_checked=False)
    default_role, role_required = _roles(reader, auth_entries, jwt_settings, oauth_settings)
    audit_log, audit_sql = _audit(reader)
    federation_url, federation_endpoint, federation_server_id = _federation(reader)

    ms = " (milliseconds)"
    query_timeout = reader.integer("QUERY_TIMEOUT", 30_000, minimum=1, unit=ms)
    max_connections = reader.integer("MAX_CONNECTIONS", 10, minimum=1, maximum=10_000)
    workers = reader.integer("WEB_CONCURRENCY", 2, minimum=1, maximum=256)
    if max_connections < workers:
        raise ConfigError(
            f"MAX_CONNECTIONS={max_connections} is less than WEB_CONCURRENCY={workers}: every worker needs "
            "at least one connection; raise MAX_CONNECTIONS or lower WEB_CONCURRENCY"
        )

    secret_text = reader.secret("SESSION_SECRET")
    if secret_text is not None and len(secret_text) < 32:
        raise ConfigError("SESSION_SECRET is too short; use at least 32 random characters")

    return Settings(
        database_url=database_url,
        ignored_url_parameters=ignored,
        read_only=reader.boolean("READ_ONLY", True),
        max_connections=max_connections,
        query_timeout_ms=query_timeout,
        health_check_enabled=reader.boolean("HEALTH_CHECK_ENABLED", True),
        health_check_timeout_ms=reader.integer("HEALTH_CHECK_TIMEOUT", 2_000, minimum=100, maximum=60_000, unit=ms),
        host=reader.raw("BIND_HOST") or "0.0.0.0",
        port=_port(reader),
        log_level=reader.choice("LOG_LEVEL", _LOG_LEVELS) or "INFO",
        slow_query_ms=reader.integer("SLOW_QUERY_MS", 1_000, minimum=0, unit=ms),
        metrics_token=_metrics_token(reader),
        metrics_dir=_metrics_dir(reader),
        pool_idle_timeout_ms=reader.integer("POOL_IDLE_TIMEOUT", 30_000, minimum=1_000, unit=ms),
        pool_connection_timeout_ms=reader.integer("POOL_CONNECTION_TIMEOUT", 2_000, minimum=1, unit=ms),
        pool_statement_timeout_ms=reader.integer("POOL_STATEMENT_TIMEOUT", 30_000, minimum=1, unit=ms),
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
        disabled_tools=_disabled_tools(reader),
        max_query_cost=reader.positive_number("MAX_QUERY_COST"),
        max_estimated_rows=reader.positive_number("MAX_ESTIMATED_ROWS"),
        workers=workers,
        threads=reader.integer("THREADS", 4, minimum=1, maximum=256),
        session_secret=secret_text.encode() if secret_text else _container_secret(),
        session_secret_generated=secret_text is None,
        session_ttl_s=reader.integer("SESSION_TTL", 86_400, minimum=60, unit=" (seconds)"),
        allowed_origins=tuple(o.strip().rstrip("/") for o in (reader.raw("ALLOWED_ORIGINS") or "").split(",")
                              if o.strip()),
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
        tracing=_tracing(reader),
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
