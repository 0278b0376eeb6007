"""Secrets that rotate and cloud IAM tokens: each new connection gets the current one."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from pgmcp_http.config import ConfigError, load_settings
from pgmcp_http.db import DatabaseUnavailable
from pgmcp_http.db.credentials import AwsIamTokens, GcpIamTokens, connection_secrets
from tests.helpers import request, start_server
from tests.test_tools_core import call, ok


@pytest.fixture
def rotating_role(pg):
    with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
        conn.execute("CREATE ROLE pgmcp_rotating LOGIN PASSWORD 'first-password-123'")
        conn.execute("GRANT CONNECT ON DATABASE sampledb TO pgmcp_rotating")
        conn.execute("GRANT SELECT ON users TO pgmcp_rotating")
    try:
        yield
    finally:
        with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'pgmcp_rotating'")
            conn.execute("DROP OWNED BY pgmcp_rotating")
            conn.execute("DROP ROLE pgmcp_rotating")


def rotate(pg, password: str, write: Any) -> None:
    """Change the password in PostgreSQL and in the secret file, then cut the server's connections
    (and wait until their backends are gone: pg_terminate_backend only sends the signal)."""
    with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
        conn.execute(f"ALTER ROLE pgmcp_rotating PASSWORD '{password}'")
        write()
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'pgmcp_rotating'")
        deadline = time.monotonic() + 10
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'pgmcp_rotating'").fetchone()[0]:
            assert time.monotonic() < deadline, "the server's backends did not go away"
            time.sleep(0.05)


def test_a_rotated_password_file_takes_effect_without_a_restart(pg, rotating_role, tmp_path):
    secret = tmp_path / "db-password"
    secret.write_text("first-password-123\n")
    url = f"postgresql://pgmcp_rotating@{pg.cluster.host}:{pg.cluster.port}/sampledb"
    server = start_server(url, tmp_path, workers=1, threads=2, env={"DB_PASSWORD_FILE": str(secret)})
    try:
        assert ok(server, "query", {"sql": "SELECT count(*) AS n FROM users"})["rows"] == [{"n": 50}]
        rotate(pg, "second-password-456", lambda: secret.write_text("second-password-456\n"))
        assert ok(server, "query", {"sql": "SELECT count(*) AS n FROM users"})["rows"] == [{"n": 50}]
        assert request("GET", f"{server.base}/readyz")[0] == 200
        secret.unlink()  # now every new connection fails, clearly, and readiness says so
        rotate(pg, "third-password-789", lambda: None)
        failed = call(server, "query", {"sql": "SELECT 1"})
        assert failed["isError"] is True
        assert "database credentials unavailable: DB_PASSWORD_FILE: cannot read" in failed["content"][0]["text"]
        status, _, body = request("GET", f"{server.base}/readyz")
        assert status == 503 and "credentials unavailable" in str(body)
        assert "third-password-789" not in server.log_path.read_text()
    finally:
        server.stop()


def test_a_rotated_database_url_file_takes_effect_without_a_restart(pg, rotating_role, tmp_path):
    def url(password: str) -> str:
        return f"postgresql://pgmcp_rotating:{password}@{pg.cluster.host}:{pg.cluster.port}/sampledb"

    url_file = tmp_path / "database-url"
    url_file.write_text(url("first-password-123"))
    server = start_server(None, tmp_path, workers=1, threads=2, env={"DATABASE_URL_FILE": str(url_file)})
    try:
        assert ok(server, "query", {"sql": "SELECT 1 AS one"})["rows"] == [{"one": 1}]
        rotate(pg, "second-password-456", lambda: url_file.write_text(url("second-password-456")))
        assert ok(server, "query", {"sql": "SELECT 1 AS one"})["rows"] == [{"one": 1}]
    finally:
        server.stop()


# -- aws-iam ------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingSession:
    """A botocore session with fixed credentials (signing is local: no network) that counts tokens made."""

    def __init__(self) -> None:
        import botocore.session

        self.inner = botocore.session.Session()
        self.inner.set_credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        self.made = 0

    def create_client(self, *args: Any, **kwargs: Any) -> Any:
        client = self.inner.create_client(*args, **kwargs)
        session = self

        class Counting:
            def generate_db_auth_token(self, **token_args: Any) -> str:
                session.made += 1
                return client.generate_db_auth_token(**token_args)

        return Counting()


def test_aws_iam_tokens_are_well_formed_and_renewed_after_ten_minutes():
    clock = Clock()
    session = CountingSession()
    tokens = AwsIamTokens("postgresql://app_user@db.abc123.eu-west-1.rds.amazonaws.com:5433/app",
                          region="eu-west-1", session=session, clock=clock)
    dsn, extra = tokens.current()
    assert dsn.startswith("postgresql://app_user@") and set(extra) == {"password"}
    token = extra["password"]
    parts = urlsplit("https://" + token)
    assert parts.hostname == "db.abc123.eu-west-1.rds.amazonaws.com" and parts.port == 5433
    query = parse_qs(parts.query)
    assert query["Action"] == ["connect"] and query["DBUser"] == ["app_user"]
    credential = query["X-Amz-Credential"][0]
    assert credential.startswith("AKIDEXAMPLE/") and credential.endswith("/eu-west-1/rds-db/aws4_request")
    assert query["X-Amz-Expires"] == ["900"] and query["X-Amz-Signature"][0]
    clock.now += 599
    assert tokens.current()[1]["password"] == token and session.made == 1  # reused while younger than 10 min
    clock.now += 2
    tokens.current()
    assert session.made == 2  # a new token once the old one is ten minutes old


def test_aws_iam_needs_tls_and_a_region():
    base = {"DATABASE_URL": "postgresql://app_user@db.example.com/app", "DB_AUTH": "aws-iam"}
    with pytest.raises(ConfigError, match="DB_AUTH=aws-iam needs AWS_REGION"):
        load_settings(base)
    with pytest.raises(ConfigError, match="DB_AUTH=aws-iam needs TLS: sslmode is disable"):
        load_settings({**base, "AWS_REGION": "eu-west-1", "SSL_MODE": "disable"})
    with pytest.raises(ConfigError, match="sslmode is prefer"):
        load_settings({**base, "AWS_REGION": "eu-west-1"})
    settings = load_settings({**base, "AWS_DEFAULT_REGION": "eu-west-1", "SSL_MODE": "require"})
    assert settings.db_auth == "aws-iam" and settings.aws_region == "eu-west-1"
    with pytest.raises(ConfigError, match="makes its own passwords"):
        load_settings({**base, "DATABASE_URL": "postgresql://u:pw@h/db", "AWS_REGION": "x", "SSL_MODE": "require"})


def test_aws_iam_failures_are_a_clear_unavailable_error():
    import botocore.session

    session = botocore.session.Session()
    session.set_credentials(None, None)  # no credentials anywhere
    tokens = AwsIamTokens("postgresql://u@h/db", region="eu-west-1", session=session)
    with pytest.raises(DatabaseUnavailable, match="database credentials unavailable: no RDS IAM token for u@h"):
        tokens.current()


# -- gcp-iam ------------------------------------------------------------------------------

class FakeGoogleCredentials:
    """What google-auth's credentials look like to the server: token, expiry, valid, refresh()."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.expiry: dt.datetime | None = None
        self.refreshes = 0

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.token = f"ya29.token-{self.refreshes}"
        self.expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1)


def test_gcp_iam_tokens_are_refreshed_before_they_expire():
    credentials = FakeGoogleCredentials()
    tokens = GcpIamTokens("postgresql://sa-name@10.0.0.5/app", credentials=credentials, request=lambda: None)
    assert tokens.current() == ("postgresql://sa-name@10.0.0.5/app", {"password": "ya29.token-1"})
    assert tokens.current()[1]["password"] == "ya29.token-1" and credentials.refreshes == 1
    credentials.expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=4)
    assert tokens.current()[1]["password"] == "ya29.token-2" and credentials.refreshes == 2


def test_gcp_iam_failures_are_a_clear_unavailable_error():
    class Broken(FakeGoogleCredentials):
        def refresh(self, request: Any) -> None:
            raise RuntimeError("metadata server unreachable")

    tokens = GcpIamTokens("postgresql://sa@h/db", credentials=Broken(), request=lambda: None)
    with pytest.raises(DatabaseUnavailable, match="no Google access token .RuntimeError: metadata server"):
        tokens.current()


def test_neither_cloud_library_is_imported_unless_chosen(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from pgmcp_http.config import load_settings; from pgmcp_http.runtime import Runtime; "
            "Runtime(load_settings()); print('botocore' in sys.modules, 'google.auth' in sys.modules)")
    env = {**os.environ, "DATABASE_URL": "postgresql://u:p@127.0.0.1:1/db", "SESSION_SECRET": "x" * 32}
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent, env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    assert isinstance(connection_secrets(mode="password", dsn="postgresql://u@h/db").current(), tuple)


def test_a_rotated_url_that_does_not_parse_is_reported_without_its_text(tmp_path):
    from pgmcp_http.config import clean_database_url
    from pgmcp_http.db.credentials import FileSecrets

    url_file = tmp_path / "database-url"
    url_file.write_text("postgresql://u:N3w%Rotated-Pa55@host/db")
    secrets = FileSecrets("postgresql://u@h/db", url_file=str(url_file), password_file=None,
                          clean_url=clean_database_url)
    with pytest.raises(DatabaseUnavailable) as caught:
        secrets.current()
    assert "N3w" not in str(caught.value) and "percent-encoded" in str(caught.value)
