"""The Database group: DATABASE_URL, TLS towards PostgreSQL, and how the server logs in (DB_AUTH)."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg2
from psycopg2.extensions import parse_dsn

from pgmcp_http.config.reader import ConfigError, Reader

__all__ = ["clean_database_url", "database_url", "db_auth", "routing", "ssl"]

_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_TARGETS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")
_LOAD_BALANCE = ("disable", "random")


def database_url(reader: Reader) -> tuple[str, tuple[str, ...]]:
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


def routing(url_params: Mapping[str, str], *, read_only: bool) -> None:
    """DATABASE_URL's ``target_session_attrs`` and ``load_balance_hosts``, checked before libpq would fail on
    every connection; a write-mode server must be sent to a node that takes writes."""
    attrs = url_params.get("target_session_attrs")
    if attrs is not None and attrs not in _TARGETS:
        raise ConfigError(f"DATABASE_URL: target_session_attrs={attrs} is not one of {', '.join(_TARGETS)}")
    balance = url_params.get("load_balance_hosts")
    if balance is not None and balance not in _LOAD_BALANCE:
        raise ConfigError(f"DATABASE_URL: load_balance_hosts={balance} is not one of {', '.join(_LOAD_BALANCE)}")
    if not read_only and attrs in ("read-only", "standby", "prefer-standby"):
        raise ConfigError(f"DATABASE_URL: target_session_attrs={attrs} sends calls to standbys, which cannot "
                          "write, but READ_ONLY=false; use target_session_attrs=read-write (the default in write "
                          "mode), or run a read-only server for the standbys")


def ssl(reader: Reader, *, url_params: Mapping[str, str]) -> tuple[str | None, str | None, str | None, str | None]:
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


def db_auth(reader: Reader, *, url_params: Mapping[str, str], ssl_mode: str | None,
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
