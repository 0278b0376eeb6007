"""Where each new connection gets its secret: a fixed URL, files read again, or a cloud identity.

Every new connection asks :meth:`ConnectionSecrets.current` for the DSN and
any extra libpq parameters (the password), so:

- ``password`` (default): ``DATABASE_URL``; with ``DATABASE_URL_FILE`` or
  ``DB_PASSWORD_FILE`` the files are read again for every new connection, so
  a rotated secret (Secrets Manager through ECS, a Kubernetes secret, a Cloud
  Run secret volume) takes effect without a restart;
- ``aws-iam``: an RDS IAM authentication token made with botocore for the
  host, port and user of the URL (credentials from the standard chain, so an
  ECS task role works), reused while younger than ten minutes (tokens live
  fifteen);
- ``gcp-iam``: an OAuth2 access token of the service account from
  google-auth's default credentials (Cloud Run's identity), refreshed five
  minutes before it expires; the URL's user is the IAM database user.

Neither cloud library is imported unless chosen. A failure to get a secret is
:class:`DatabaseUnavailable` ("database credentials unavailable"): the call
fails clearly, readiness reports 503, the next connection tries again.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from psycopg2.extensions import parse_dsn

from pgmcp_http.db.errors import DatabaseUnavailable

__all__ = ["AUTH_MODES", "AwsIamTokens", "ConnectionSecrets", "FileSecrets", "GcpIamTokens", "StaticSecrets",
           "connection_secrets"]

AUTH_MODES = ("password", "aws-iam", "gcp-iam")
GCP_SCOPES = ("https://www.googleapis.com/auth/sqlservice.login",)


class ConnectionSecrets(Protocol):
    def current(self) -> tuple[str, dict[str, str]]:
        """The DSN and extra libpq parameters (``password``) for a connection opened now."""
        ...


def _unavailable(reason: str) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"database credentials unavailable: {reason}; the next connection tries again")


class StaticSecrets:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn

    def current(self) -> tuple[str, dict[str, str]]:
        return self._dsn, {}


class FileSecrets:
    """DATABASE_URL_FILE and/or DB_PASSWORD_FILE, read again for every new connection."""

    def __init__(self, dsn: str, *, url_file: str | None, password_file: str | None,
                 clean_url: Callable[[str], str]) -> None:
        self._dsn = dsn
        self._url_file = url_file
        self._password_file = password_file
        self._clean_url = clean_url

    def current(self) -> tuple[str, dict[str, str]]:
        dsn = self._dsn
        if self._url_file is not None:
            try:
                dsn = self._clean_url(_read(self._url_file, "DATABASE_URL_FILE"))
            except ValueError:  # ConfigError; never its text, which could quote the new password
                raise _unavailable("DATABASE_URL_FILE does not hold a valid connection string (check its form and "
                                   "that special characters in the password are percent-encoded)") from None
        extra: dict[str, str] = {}
        if self._password_file is not None:
            extra["password"] = _read(self._password_file, "DB_PASSWORD_FILE")
        return dsn, extra


def _read(path: str, name: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise _unavailable(f"{name}: cannot read {path}: {exc.strerror}") from None
    if not text:
        raise _unavailable(f"{name}: {path} is empty")
    return text


class AwsIamTokens:
    """RDS IAM authentication tokens for the URL's host, port and user."""

    def __init__(self, dsn: str, *, region: str, session: Any = None, max_age_s: float = 600,
                 clock: Callable[[], float] = time.monotonic) -> None:
        params = parse_dsn(dsn)
        self._dsn = dsn
        self.host = params.get("host", "localhost")
        self.port = int(params.get("port", 5432))
        self.user = params.get("user", "")
        self.region = region
        self._session = session
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._made_at = 0.0

    def current(self) -> tuple[str, dict[str, str]]:
        with self._lock:
            if self._token is None or self._clock() - self._made_at >= self._max_age_s:
                self._token = self._new_token()
                self._made_at = self._clock()
            return self._dsn, {"password": self._token}

    def _new_token(self) -> str:
        try:
            if self._session is None:
                import botocore.session  # only when aws-iam is chosen

                self._session = botocore.session.get_session()
            client = self._session.create_client("rds", region_name=self.region)
            return str(client.generate_db_auth_token(DBHostname=self.host, Port=self.port,
                                                     DBUsername=self.user, Region=self.region))
        except Exception as exc:  # noqa: BLE001 - botocore raises many kinds; all mean "no token now"
            raise _unavailable(f"no RDS IAM token for {self.user}@{self.host} ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from None


class GcpIamTokens:
    """OAuth2 access tokens of the service account, for Cloud SQL IAM database authentication."""

    def __init__(self, dsn: str, *, credentials: Any = None, request: Callable[[], Any] | None = None,
                 refresh_margin: dt.timedelta = dt.timedelta(minutes=5)) -> None:
        self._dsn = dsn
        self._credentials = credentials
        self._request = request
        self._margin = refresh_margin
        self._lock = threading.Lock()

    def current(self) -> tuple[str, dict[str, str]]:
        with self._lock:
            try:
                credentials = self._load()
                if self._stale(credentials):
                    credentials.refresh(self._make_request())
                token = credentials.token
            except DatabaseUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - google-auth raises many kinds; all mean "no token now"
                raise _unavailable(f"no Google access token ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from None
            if not token:
                raise _unavailable("the Google credentials gave an empty access token")
            return self._dsn, {"password": str(token)}

    def _load(self) -> Any:
        if self._credentials is None:
            import google.auth  # only when gcp-iam is chosen

            self._credentials, _ = google.auth.default(scopes=list(GCP_SCOPES))
        return self._credentials

    def _stale(self, credentials: Any) -> bool:
        if not credentials.token:
            return True
        expiry = getattr(credentials, "expiry", None)
        if expiry is None:
            return False
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None) if expiry.tzinfo is None else dt.datetime.now(dt.UTC)
        return expiry - now <= self._margin

    def _make_request(self) -> Any:
        if self._request is not None:
            return self._request()
        import google.auth.transport.requests  # only when gcp-iam is chosen

        return google.auth.transport.requests.Request()


def connection_secrets(*, mode: str, dsn: str, url_file: str | None = None, password_file: str | None = None,
                       region: str | None = None, clean_url: Callable[[str], str] = lambda url: url,
                       ) -> ConnectionSecrets:
    """The secrets source for a validated configuration (see :mod:`pgmcp_http.config`)."""
    if mode == "aws-iam":
        if not region:
            raise ValueError("aws-iam needs a region")
        return AwsIamTokens(dsn, region=region)
    if mode == "gcp-iam":
        return GcpIamTokens(dsn)
    if url_file is not None or password_file is not None:
        return FileSecrets(dsn, url_file=url_file, password_file=password_file, clean_url=clean_url)
    return StaticSecrets(dsn)
