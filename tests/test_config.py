"""Configuration: read once, validated, one clear line per mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pgmcp_http.config import ConfigError, load_settings

REPO = Path(__file__).resolve().parent.parent
URL = "postgresql://reader:pw@db.example:5432/app"


def settings(**env: str):
    return load_settings({"DATABASE_URL": URL, **env})


def test_defaults_follow_the_guide():
    s = settings()
    assert (s.read_only, s.max_connections, s.query_timeout_ms, s.port) == (True, 10, 30_000, 3401)
    assert (s.pool_idle_timeout_ms, s.pool_connection_timeout_ms, s.pool_statement_timeout_ms) == (30_000, 2_000,
                                                                                                   30_000)
    assert s.max_query_length == 10_000 and s.allowed_schemas == () and s.blocked_tables == ()
    assert s.session_secret_generated and len(s.session_secret) == 32


def test_values_are_parsed():
    s = settings(READ_ONLY="false", MAX_CONNECTIONS="20", QUERY_TIMEOUT="5000", HEALTH_PORT="8080", LOG_LEVEL="warn",
                 ALLOWED_SCHEMAS="public, app", BLOCKED_TABLES="secrets,app.tokens", WEB_CONCURRENCY="4")
    assert not s.read_only and s.max_connections == 20 and s.query_timeout_ms == 5000 and s.port == 8080
    assert s.log_level == "WARNING" and s.allowed_schemas == ("public", "app")
    assert s.blocked_tables == ("secrets", "app.tokens") and s.connections_per_worker == 5


def test_port_wins_over_health_port():
    assert settings(PORT="9000", HEALTH_PORT="8080").port == 9000


@pytest.mark.parametrize("env,fragment", [
    ({"READ_ONLY": "maybe"}, "READ_ONLY='maybe' is not a boolean"),
    ({"MAX_CONNECTIONS": "ten"}, "MAX_CONNECTIONS='ten' is not a whole number"),
    ({"MAX_CONNECTIONS": "0"}, "MAX_CONNECTIONS=0 is out of range"),
    ({"QUERY_TIMEOUT": "-5"}, "QUERY_TIMEOUT=-5 is out of range"),
    ({"LINEAGE_CHECK_CACHE": "-1"}, "LINEAGE_CHECK_CACHE=-1 is out of range"),
    ({"MAX_CONNECTIONS": "2", "WEB_CONCURRENCY": "3"}, "MAX_CONNECTIONS=2 is less than WEB_CONCURRENCY=3"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='loud' is not one of"),
    ({"SSL_MODE": "sometimes"}, "SSL_MODE='sometimes' is not one of"),
    ({"SSL_MODE": "verify-full"}, "SSL_MODE=verify-full needs SSL_CA_PATH"),
    ({"ENABLE_SSL": "true", "SSL_MODE": "disable"}, "contradicts ENABLE_SSL=true"),
    ({"SSL_CA_PATH": "/nonexistent/ca.crt"}, "SSL_CA_PATH=/nonexistent/ca.crt: no such file"),
    ({"ALLOWED_SCHEMAS": "public,a.b"}, "ALLOWED_SCHEMAS: 'a.b' is not a schema name"),
    ({"BLOCKED_TABLES": "a.b.c"}, "BLOCKED_TABLES: 'a.b.c' is not `table` or `schema.table`"),
    ({"SESSION_SECRET": "short"}, "SESSION_SECRET is too short"),
    ({"PORT": "70000"}, "PORT=70000 is out of range"),
    ({"MAX_REPLICA_LAG": "soon"}, "MAX_REPLICA_LAG='soon' is not a number"),
    ({"MAX_REPLICA_LAG": "0"}, "MAX_REPLICA_LAG='0' must be a number above 0"),
    ({"DATABASE_URL": URL + "?load_balance_hosts=roundrobin"},
     "DATABASE_URL: load_balance_hosts=roundrobin is not one of disable, random"),
    ({"DATABASE_URL": URL + "?target_session_attrs=standby", "READ_ONLY": "false"},
     "target_session_attrs=standby sends calls to standbys, which cannot write, but READ_ONLY=false"),
])
def test_bad_values_name_the_variable(env, fragment):
    with pytest.raises(ConfigError) as caught:
        settings(**env)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


def test_database_url_is_required_and_checked_without_echoing_it():
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        load_settings({})
    with pytest.raises(ConfigError) as caught:
        load_settings({"DATABASE_URL": "postgresql://u:hunter2@host/db?nosuchparam=1"})
    assert "DATABASE_URL is not a valid PostgreSQL connection string" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_database_url_file(tmp_path):
    secret = tmp_path / "database_url"
    secret.write_text(URL + "\n")
    assert load_settings({"DATABASE_URL_FILE": str(secret)}).database_url == URL
    with pytest.raises(ConfigError, match="DATABASE_URL and DATABASE_URL_FILE are both set"):
        load_settings({"DATABASE_URL_FILE": str(secret), "DATABASE_URL": URL})
    with pytest.raises(ConfigError, match="DATABASE_URL_FILE: cannot read /nonexistent"):
        load_settings({"DATABASE_URL_FILE": "/nonexistent"})


def test_pool_parameters_of_the_guide_are_dropped_not_fatal():
    s = load_settings({"DATABASE_URL": URL + "?sslmode=require&pool_max_conns=20&pool_timeout=10s"})
    assert s.database_url == URL + "?sslmode=require"
    assert s.ignored_url_parameters == ("pool_max_conns", "pool_timeout")


def test_ssl_settings_map_to_libpq(tmp_path):
    ca, cert, key = (tmp_path / name for name in ("ca.crt", "client.crt", "client.key"))
    for path in (ca, cert, key):
        path.write_text("x")
    key.chmod(0o600)
    s = settings(ENABLE_SSL="true", SSL_CA_PATH=str(ca), SSL_CERT_PATH=str(cert), SSL_KEY_PATH=str(key))
    assert s.connect_kwargs() == {"sslmode": "require", "sslrootcert": str(ca), "sslcert": str(cert),
                                  "sslkey": str(key)}
    key.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by group or others"):
        settings(SSL_CERT_PATH=str(cert), SSL_KEY_PATH=str(key))


@pytest.mark.parametrize("entry", [
    [sys.executable, "-c", "import wsgi"],
    [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "--check-config", "wsgi:app"],
])
def test_entry_points_stop_with_one_line(entry):
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": URL, "MAX_CONNECTIONS": "lots"}
    proc = subprocess.run(entry, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["pgmcp-http: configuration error: MAX_CONNECTIONS='lots' is not a whole number"]


def test_names_follow_sql_identifier_rules():
    s = settings(ALLOWED_SCHEMAS='Public, "Sales"', BLOCKED_TABLES='App.Secrets, "Audit"."Log", "a,b"')
    assert s.allowed_schemas == ("public", "Sales")
    assert s.blocked_tables == ("app.secrets", "Audit.Log", "a,b")
    for bad in ("a.b.c", "app.", "1abc", '"unterminated', "x y"):
        with pytest.raises(ConfigError, match="BLOCKED_TABLES"):
            settings(BLOCKED_TABLES=bad)
    with pytest.raises(ConfigError, match="ALLOWED_SCHEMAS: 'app.x' is not a schema name"):
        settings(ALLOWED_SCHEMAS="app.x")


def test_allowed_definer_functions_are_names():
    assert settings(ALLOWED_DEFINER_FUNCTIONS="public.Audit_Log, stats").allowed_definer_functions == (
        "public.audit_log", "stats")
    with pytest.raises(ConfigError, match="is not `function` or `schema.function`"):
        settings(ALLOWED_DEFINER_FUNCTIONS="a.b.c")


def test_verify_modes_accept_the_ca_from_the_url(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    url = f"postgresql://u:p@db.example.com/app?sslrootcert={ca}"
    assert settings(DATABASE_URL=url, SSL_MODE="verify-full").connect_kwargs() == {"sslmode": "verify-full"}
    with pytest.raises(ConfigError, match=r"SSL_MODE=verify-ca needs SSL_CA_PATH \(or sslrootcert"):
        settings(SSL_MODE="verify-ca")


def test_an_unparseable_url_never_echoes_its_password():
    with pytest.raises(ConfigError) as caught:
        settings(DATABASE_URL="postgresql://u:N3w%Rotated-Pa55@host/db")
    assert "N3w" not in str(caught.value) and "percent-encoded" in str(caught.value)
