"""Every environment variable the server reads: name, default, meaning and group, declared once.

``docs/configuration.md`` is generated from this table (``make docs``) and a test
fails when the page and the table differ, or when an area module reads a
variable that is not declared here with a description. Descriptions are
Markdown; ``see`` names the page of ``docs/`` that explains the feature.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GROUPS", "VARIABLES", "Group", "Variable"]


@dataclass(frozen=True)
class Group:
    """A heading of the configuration reference: the variables of one area."""

    key: str
    title: str
    intro: str


@dataclass(frozen=True)
class Variable:
    """One documented environment variable."""

    name: str
    default: str
    help: str
    group: str
    secret: bool = False
    see: str = ""


_DB, _HTTP, _LIMITS, _ID, _OBS, _DEPLOY = "database", "http", "limits", "identity", "observability", "deployment"

GROUPS: tuple[Group, ...] = (
    Group(_DB, "Database", "Which PostgreSQL to serve, how to log in to it and the pool of connections each "
          "worker keeps."),
    Group(_HTTP, "HTTP", "Where the server listens, MCP sessions, browsers, and what a request may send."),
    Group(_LIMITS, "Limits", "What SQL may run and how much it may cost or return; which tools are offered; "
          "each caller's fair share."),
    Group(_ID, "Identity", "Who is calling (tokens, JWTs, OAuth sign-in), as which PostgreSQL role, and the "
          "audit trail of what each caller did."),
    Group(_OBS, "Observability", "Logs, metrics, health checks and tracing."),
    Group(_DEPLOY, "Deployment", "Processes and threads per container, and registration with the TAS MCP "
          "Federation."),
)


VARIABLES: tuple[Variable, ...] = (
    # Database
    Variable("DATABASE_URL", "(none; `make run` starts a local one)",
             "libpq URL or key=value DSN of the database to serve; several hosts with `target_session_attrs` and "
             "`load_balance_hosts` route calls to replicas; `pool_*` parameters of the design guide's "
             "examples are ignored (use the POOL_* variables)", _DB, secret=True,
             see="performance.md#read-replicas-and-failover"),
    Variable("DATABASE_URL_FILE", "", "file holding DATABASE_URL (Docker/Kubernetes secrets); read again when a "
             "new connection is made, so a rotated URL is picked up", _DB, see="deploy/credentials.md"),
    Variable("MAX_CONNECTIONS", "10", "database connections for the whole container, split evenly between "
             "workers", _DB, see="performance.md"),
    Variable("MAX_REPLICA_LAG", "(none)", "seconds a standby may be behind the primary and still answer; a call "
             "on a standby further behind moves to a fresher node where DATABASE_URL allows it, or is refused "
             "with an error saying how far behind", _DB, see="performance.md#the-stale-read-guard"),
    Variable("POOL_IDLE_TIMEOUT", "30000", "ms an unused connection stays open before it is closed", _DB),
    Variable("POOL_CONNECTION_TIMEOUT", "2000",
             "ms to wait for a free connection (and to connect) before answering \"server busy\"", _DB),
    Variable("POOL_STATEMENT_TIMEOUT", "30000", "ms session default `statement_timeout` of every connection: "
             "the backstop for all SQL", _DB),
    Variable("ROLLBACK_DELAY_MS", "5", "ms a finished read-only transaction may stay open on an idle pooled "
             "connection, to be rolled back in the same round trip as the next call's first statement (one "
             "round trip fewer per call); then it is rolled back on its own. 0 rolls back at once", _DB,
             see="performance.md#one-round-trip-per-read"),
    Variable("ENABLE_SSL", "false", "connect to PostgreSQL with TLS (`SSL_MODE` then defaults to `require`)", _DB),
    Variable("SSL_MODE", "(libpq default)", "disable, allow, prefer, require, verify-ca or verify-full; `sslmode` "
             "in `DATABASE_URL` also works", _DB),
    Variable("SSL_CERT_PATH", "", "client certificate file (libpq `sslcert`)", _DB),
    Variable("SSL_KEY_PATH", "", "client private key file (libpq `sslkey`); must not be group/world readable", _DB),
    Variable("SSL_CA_PATH", "", "CA certificate to verify the server (libpq `sslrootcert`)", _DB),
    Variable("DB_AUTH", "password", "`password`, `aws-iam` (RDS IAM tokens) or `gcp-iam` (Cloud SQL IAM tokens)",
             _DB, see="deploy/credentials.md"),
    Variable("DB_PASSWORD_FILE", "", "file holding the database password, read again for every new connection",
             _DB, see="deploy/credentials.md"),
    Variable("AWS_REGION", "(`AWS_DEFAULT_REGION`)", "the RDS instance's region, for `DB_AUTH=aws-iam`", _DB),
    # HTTP
    Variable("PORT", "3401", "TCP port to listen on (Cloud Run sets it)", _HTTP),
    Variable("HEALTH_PORT", "3401", "the design guide's name for PORT; PORT wins when both are set", _HTTP),
    Variable("BIND_HOST", "0.0.0.0", "address to listen on", _HTTP),
    Variable("SESSION_SECRET", "(random per container)", "key (32+ characters) that signs `Mcp-Session-Id`; give "
             "every replica the same one", _HTTP, secret=True),
    Variable("SESSION_SECRET_FILE", "", "file holding SESSION_SECRET", _HTTP),
    Variable("SESSION_TTL", "86400", "seconds an MCP session id stays valid", _HTTP),
    Variable("ALLOWED_ORIGINS", "(none)", "comma-separated browser Origins allowed to call /mcp (clients without "
             "`Origin` are not affected; loopback Origins are allowed while bound to loopback)", _HTTP,
             see="security.md"),
    Variable("MAX_REQUEST_BYTES", "1048576", "largest request body accepted (413 above)", _HTTP),
    Variable("REQUEST_READ_TIMEOUT", "10000", "ms a client may take to send a whole request (headers and body); "
             "slower ones are cut off (slow-loris)", _HTTP),
    Variable("REQUEST_QUEUE_LIMIT", "64", "requests that may wait for a thread in each worker; more get 503 with "
             "`Retry-After: 1` at once", _HTTP),
    # Limits
    Variable("READ_ONLY", "true", "refuse anything but reads; `false` allows INSERT/UPDATE/DELETE/MERGE, committed "
             "per call", _LIMITS, see="security.md"),
    Variable("QUERY_TIMEOUT", "30000", "ms a tool's statement may run before PostgreSQL cancels it", _LIMITS),
    Variable("MAX_QUERY_LENGTH", "10000", "longest SQL text accepted, in characters", _LIMITS),
    Variable("ALLOWED_SCHEMAS", "(all)", "comma-separated schemas tools may read; also each transaction's "
             "`search_path`. Names follow SQL: unquoted ones fold to lower case, `\"Sales\"` keeps its case",
             _LIMITS, see="security.md"),
    Variable("BLOCKED_TABLES", "(none)", "comma-separated `table` or `schema.table` entries never readable nor "
             "listed (SQL name rules, as above), nor the views, partitions and parents that return their rows",
             _LIMITS, see="security.md"),
    Variable("LINEAGE_CHECK_CACHE", "2000", "ms each worker remembers which views, partitions, parents and "
             "`BEGIN ATOMIC` functions return rows of a blocked table or of one outside `ALLOWED_SCHEMAS` (0: read "
             "the catalog on every call)", _LIMITS),
    Variable("ALLOWED_DEFINER_FUNCTIONS", "(none)", "SECURITY DEFINER functions (`name` or `schema.name`) callers "
             "may call; every other one is refused", _LIMITS, see="security.md"),
    Variable("DEFINER_CHECK_CACHE", "2000", "ms each worker remembers the list of SECURITY DEFINER functions and "
             "operators (0: read it on every call that uses one)", _LIMITS),
    Variable("MAX_ROWS", "1000", "rows a query returns at most (the result says it was truncated)", _LIMITS),
    Variable("MAX_RESULT_BYTES", "1048576", "bytes of row data a query returns at most", _LIMITS),
    Variable("MAX_QUERY_COST", "(none)", "planner total cost above which `query` refuses a statement before "
             "running it", _LIMITS, see="tools.md"),
    Variable("MAX_ESTIMATED_ROWS", "(none)", "planner row estimate above which `query` refuses a statement before "
             "running it", _LIMITS, see="tools.md"),
    Variable("TOOLS_FILE", "(none)", "YAML file of custom tools (named, parameterised SQL offered as MCP tools), "
             "checked at start-up", _LIMITS, see="custom-tools.md"),
    Variable("DISABLE_TOOLS", "(none)", "comma-separated built-in tools not to offer, e.g. `query,analyze_query`",
             _LIMITS, see="custom-tools.md#disabling-built-in-tools"),
    Variable("CALLER_MAX_CONCURRENT", "(with auth: each worker's pool size less 1, at least 1; without: off)",
             "calls (`tools/call`, `resources/read`) one caller may have running at once in each worker; one more "
             "is refused at once with \"busy, retry after 1 s\" (429 on REST). `off` or 0: no cap", _LIMITS,
             see="security.md#fair-share-per-caller"),
    Variable("CALLER_RATE_LIMIT", "(off)", "calls per minute each caller may make to the container, split evenly "
             "between the workers (so approximate); one more is refused at once with \"busy, retry after N s\"",
             _LIMITS, see="security.md#fair-share-per-caller"),
    # Identity
    Variable("AUTH_TOKENS", "(none: open, with a warning)", "comma-separated tokens accepted on `/mcp` and "
             "`/mcp/tools/*` (16+ characters each; `openssl rand -hex 32`)", _ID, secret=True, see="identity.md"),
    Variable("AUTH_TOKENS_FILE", "", "file holding the tokens, one per line (`#` starts a comment), or YAML/JSON "
             "naming each caller: `name: {token or sha256, role}`", _ID, see="identity.md"),
    Variable("AUTH_HEADER", "X-API-Key", "header that may carry a token instead of `Authorization: Bearer`", _ID),
    Variable("REQUIRE_AUTH", "false", "refuse to start without tokens, JWT_KEY_FILE or OAUTH_RESOURCE (the "
             "production manifests set it)", _ID),
    Variable("JWT_KEY_FILE", "(none: JWTs are not accepted)", "PEM public key (RS/PS/ES/EdDSA) or file holding "
             "the HMAC secret (HS256/384/512) bearer JWTs must be signed with", _ID, see="identity.md"),
    Variable("JWT_ALGORITHMS", "RS256", "comma-separated algorithms a JWT may use; never `none`", _ID),
    Variable("JWT_AUDIENCE", "(required with `JWT_KEY_FILE`)", "the `aud` a JWT must carry", _ID),
    Variable("JWT_ISSUER", "(any)", "the `iss` a JWT must carry", _ID),
    Variable("SUBJECT_CLAIM", "sub", "JWT or OAuth access-token claim naming the caller (its subject)", _ID),
    Variable("ROLE_CLAIM", "(none)", "JWT or OAuth access-token claim naming the caller's PostgreSQL role, checked "
             "against `ALLOWED_ROLES`", _ID, see="identity.md"),
    Variable("ALLOWED_ROLES", "(required with `ROLE_CLAIM`)", "comma-separated roles a token's role claim may "
             "name", _ID),
    Variable("DEFAULT_ROLE", "(none: the login role)", "PostgreSQL role for callers whose entry names none", _ID,
             see="identity.md"),
    Variable("ROLE_REQUIRED", "false", "refuse every database call of a caller that has no role", _ID),
    Variable("OAUTH_RESOURCE", "(none: OAuth sign-in off)", "this server's canonical MCP URL as users type it "
             "(`https://db.example.com/mcp`: lower-case scheme and host, no trailing slash, query or fragment); the "
             "`resource` of its metadata and the `aud` tokens must carry", _ID, see="sign-in.md"),
    Variable("OAUTH_ISSUERS", "(required with `OAUTH_RESOURCE`)", "comma-separated issuer URLs of the "
             "authorization servers whose access tokens are accepted, exactly as each writes its `issuer`", _ID),
    Variable("OAUTH_JWKS_URL", "(discovered from the issuer)", "signing-key set URL, instead of RFC 8414 / OpenID "
             "discovery (one issuer only)", _ID),
    Variable("OAUTH_AUDIENCES", "(none)", "comma-separated extra `aud` values accepted besides `OAUTH_RESOURCE` "
             "(an Entra application id URI, say)", _ID),
    Variable("OAUTH_ALGORITHMS", "RS256,ES256,PS256", "comma-separated signature algorithms access tokens may "
             "use; asymmetric only", _ID),
    Variable("OAUTH_TOKEN_TYPES", "at+jwt", "comma-separated JWT `typ` headers accepted (RFC 9068's `at+jwt` keeps "
             "ID tokens out); `any` accepts every one, for providers that write `JWT`", _ID),
    Variable("OAUTH_SCOPES", "db.schema db.read", "scopes advertised in the metadata and asked for by a 401: what "
             "a client requests at sign-in", _ID, see="sign-in.md"),
    Variable("OAUTH_TOOL_SCOPES", "(built-in mapping)", "`tool=scope scope,...`: the scopes a tool needs, replacing "
             "the default (catalog tools `db.schema`, the others `db.read`; a write also needs `db.write`)", _ID,
             see="sign-in.md"),
    Variable("OAUTH_RESOURCE_NAME", "pgmcp-http", "human-readable name in the resource metadata", _ID),
    Variable("OAUTH_JWKS_CACHE", "600", "seconds (10 to 86400) a worker keeps an issuer's signing keys before "
             "fetching them again; an unknown `kid` refetches at once, at most once per min(30 s, a quarter of "
             "this)", _ID),
    Variable("OAUTH_FETCH_TIMEOUT", "3000", "ms a discovery, key-set or introspection request may take", _ID),
    Variable("OAUTH_INTROSPECTION_CLIENT_ID", "(none: opaque tokens refused)", "client id this server "
             "authenticates with at the issuer's RFC 7662 introspection endpoint, to accept opaque tokens (one "
             "issuer only)", _ID),
    Variable("OAUTH_INTROSPECTION_CLIENT_SECRET", "(required with the client id)", "its client secret", _ID,
             secret=True),
    Variable("OAUTH_INTROSPECTION_CLIENT_SECRET_FILE", "", "file holding OAUTH_INTROSPECTION_CLIENT_SECRET", _ID),
    Variable("AUDIT_LOG", "stdout", "where the audit trail goes: `stdout`, a file path (appended to) or `off`", _ID,
             see="identity.md"),
    Variable("AUDIT_SQL", "text", "what an audit record says of the statement: `text` (and its fingerprint), "
             "`fingerprint` or `off`", _ID),
    # Observability
    Variable("LOG_LEVEL", "info", "debug, info, warning, error or critical", _OBS),
    Variable("SLOW_QUERY_MS", "1000", "ms at or above which a tool call writes a `slow tool call` line (0 turns it "
             "off)", _OBS, see="operations.md"),
    Variable("HEALTH_CHECK_ENABLED", "true", "serve GET /health (404 when false; `/livez` and `/readyz` always "
             "answer)", _OBS, see="operations.md"),
    Variable("HEALTH_CHECK_TIMEOUT", "2000", "ms `/health`, `/readyz` and `/metrics` wait for PostgreSQL before "
             "reporting it down (connecting to a host that does not answer takes at least 2 s to time out: "
             "libpq's minimum)", _OBS),
    Variable("METRICS_TOKEN", "(none: /metrics is open)", "bearer token GET /metrics requires (at least 16 "
             "characters; `openssl rand -hex 32`)", _OBS, secret=True, see="operations.md"),
    Variable("METRICS_TOKEN_FILE", "", "file holding METRICS_TOKEN", _OBS),
    Variable("PROMETHEUS_MULTIPROC_DIR", "(a private temporary directory)", "an empty directory, used by this "
             "container only, where the gunicorn processes add up their metrics; emptied at start", _OBS),
    Variable("OTEL_EXPORTER_OTLP_ENDPOINT", "(none: tracing off)", "OTLP/HTTP collector base URL "
             "(`http://otel-collector:4318`); setting it (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) turns tracing on",
             _OBS, see="operations.md"),
    Variable("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "(none)", "full OTLP/HTTP traces URL (`.../v1/traces`), instead "
             "of the above", _OBS),
    Variable("OTEL_SERVICE_NAME", "pgmcp-http", "`service.name` of the spans", _OBS),
    Variable("OTEL_TRACES_SAMPLER", "parentbased_always_on", "the SDK's sampler (`parentbased_traceidratio` with "
             "`OTEL_TRACES_SAMPLER_ARG=0.1` keeps a tenth)", _OBS),
    Variable("OTEL_TRACES_EXPORTER", "(none: on when an endpoint is set)", "`none` turns tracing off; `otlp` turns "
             "it on (to `localhost:4318` without an endpoint)", _OBS),
    Variable("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", "the only protocol shipped (the collector's port 4318; "
             "gRPC is refused at start-up)", _OBS),
    Variable("OTEL_SDK_DISABLED", "false", "`true` turns tracing off whatever else is set", _OBS),
    Variable("SQLCOMMENTER", "true", "with tracing on, append `/*tool=...,traceparent=...*/` to the SQL sent to "
             "PostgreSQL", _OBS),
    # Deployment
    Variable("WEB_CONCURRENCY", "2", "gunicorn worker processes", _DEPLOY, see="performance.md"),
    Variable("THREADS", "4", "threads per worker", _DEPLOY, see="performance.md"),
    Variable("FEDERATION_URL", "(none: no self-registration)", "base URL of the TAS federation "
             "(`http://tas-mcp-federation:8080`); the server registers itself there in the background at start-up",
             _DEPLOY, see="../federation/README.md"),
    Variable("FEDERATION_ENDPOINT", "(none; required with `FEDERATION_URL`)", "base URL, without a path, at which "
             "the federation reaches this server (`http://postgres-mcp-server:3401`)", _DEPLOY),
    Variable("FEDERATION_SERVER_ID", "postgres-mcp-server", "this server's id in the federation; replicas of one "
             "service share it", _DEPLOY),
)
