"""Helpers for the tests: live servers, raw HTTP, and SDK clients pinned to a revision."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2
from prometheus_client.parser import text_string_to_metric_families
from psycopg2.extensions import parse_dsn

from devkit import devdb
from pgmcp_http.config import VARIABLES, ConfigError, load_settings

REPO = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
TEST_SESSION_SECRET = "test-session-secret-0123456789abcdef0123456789"
TEST_METRICS_TOKEN = "test-metrics-token-5f0c2a9e7b1d4c38"

# Every log file a server of this test session wrote, and every secret a server was given: the
# last test of the session reads the former for the latter (tests/test_ops_logs.py).
SERVER_LOGS: list[Path] = []
SERVER_SECRETS: set[str] = set()


def _remember_secrets(env: dict[str, str]) -> None:
    """What the server itself treats as secret (Settings.secret_values: database password, session
    key, every token); for a configuration it would refuse, every *TOKEN(S)/SECRET/PASSWORD value."""
    try:
        found = list(load_settings(env).secret_values())
    except ConfigError:
        found = [part for key, value in env.items() if re.search(r"(TOKENS?|SECRET|PASSWORD)$", key)
                 for part in value.split(",")]
        with contextlib.suppress(psycopg2.ProgrammingError):
            found.append(parse_dsn(env.get("DATABASE_URL", "")).get("password") or "")
    SERVER_SECRETS.update(value.strip() for value in found if len(value.strip()) >= 6)


@dataclass(frozen=True)
class PgCluster:
    cluster: devdb.Cluster
    readonly_url: str
    readonly_password: str
    superuser_password: str

    def superuser_dsn(self, dbname: str = devdb.SAMPLE_DB) -> str:
        return self.cluster.superuser_dsn(dbname)

    def superuser_url(self, dbname: str = devdb.SAMPLE_DB) -> str:
        return self.cluster.url(user="postgres", password=self.superuser_password, dbname=dbname)


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    stdout_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(raw))
        return lines

    def stop(self) -> None:
        stop_process(self.proc, grace=30)


def stop_process(proc: subprocess.Popen[Any], *, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL when ``proc`` has not exited within ``grace`` seconds; nothing if it has exited."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def scratch_database(pg: PgCluster, name: str, sql: str) -> Iterator[str]:
    """A database made afresh on the session cluster, ``sql`` run in it as the superuser; yields the
    read-only role's URL for it and drops it afterwards (closing whatever is still connected)."""
    import psycopg

    with psycopg.connect(pg.superuser_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(pg.superuser_url(name), autocommit=True) as conn:
            conn.execute(sql)
        yield pg.cluster.url(user="mcp_readonly", password=pg.readonly_password, dbname=name)
    finally:
        with psycopg.connect(pg.superuser_url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_server(database_url: str | None, workdir: Path, *, workers: int = 2, threads: int = 4,
                 env: dict[str, str] | None = None, wait: bool = True, port: int | None = None) -> ServerProcess:
    """Start gunicorn as the README does; wait until it answers HTTP. ``port``: one chosen beforehand (when the
    configuration must name the server's own URL), else a free one."""
    port = port or devdb.free_port()
    full_env = {key: value for key, value in os.environ.items() if not _from_the_shell_only(key)}
    full_env.update({
        "PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "WEB_CONCURRENCY": str(workers),
        "THREADS": str(threads),
        "SESSION_SECRET": TEST_SESSION_SECRET,
        "LOG_LEVEL": "info",
        # Tests create SECURITY DEFINER functions and views over blocked tables and use them at once: no memo.
        "DEFINER_CHECK_CACHE": "0",
        "LINEAGE_CHECK_CACHE": "0",
    })
    if database_url is not None:
        full_env["DATABASE_URL"] = database_url
    full_env.update(env or {})
    log_path = workdir / f"server-{port}.log"
    log_file = log_path.open("wb")
    # stdout carries the audit trail (AUDIT_LOG=stdout, the default), stderr the application log.
    stdout_path = workdir / f"server-{port}.stdout"
    SERVER_LOGS.extend([log_path, stdout_path])
    _remember_secrets(full_env)
    proc = subprocess.Popen([str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=REPO, env=full_env,
                            stdout=stdout_path.open("wb"), stderr=log_file)
    server = ServerProcess(proc=proc, port=port, log_path=log_path, env=full_env, stdout_path=stdout_path)
    if wait:
        try:
            wait_for_http(server)
        except BaseException:
            server.stop()  # a server that never answered is not left running behind a failed test
            raise
    return server


# A setting of the developer's shell must not change what a test's server does: only what the test passes.
_SHELL_SETTINGS = frozenset(variable.name for variable in VARIABLES) | {"AWS_DEFAULT_REGION"}
_SHELL_PREFIXES = ("PG", "OTEL_", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy")


def _from_the_shell_only(name: str) -> bool:
    return name in _SHELL_SETTINGS or name.startswith(_SHELL_PREFIXES)


@contextlib.contextmanager
def serving(database_url: str | None, workdir: Path, **options: Any) -> Iterator[ServerProcess]:
    """:func:`start_server` for the length of a ``with`` block (stopped however the block ends)."""
    server = start_server(database_url, workdir, **options)
    try:
        yield server
    finally:
        server.stop()


def start_up_failure(database_url: str | None, workdir: Path, env: dict[str, str]) -> list[str]:
    """Start gunicorn as the README does with ``env``, which must stop it: its non-empty log lines."""
    server = start_server(database_url, workdir, workers=1, threads=1, env=env, wait=False)
    try:
        assert server.proc.wait(timeout=30) != 0
    finally:
        server.stop()
    return [line for line in server.log_path.read_text().splitlines() if line.strip()]


def wait_for_http(server: ServerProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}:\n{server.log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                pass
            status, _, _ = request("GET", f"{server.base}/livez-probe-nonexistent")
            if status:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not answer within {timeout}s:\n{server.log_path.read_text()}")


def wait_until(predicate: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.1,
               what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; return that, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s (last: {result!r})")
        time.sleep(interval)


def worker_pids(server: ServerProcess) -> set[int]:
    """The gunicorn worker processes (children of the master) alive right now."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == server.proc.pid and fields[0] != "Z":
                found.add(int(stat.parent.name))
    return found


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: ServerProcess, token: str | None = None) -> Samples:
    """GET /metrics, parsed: {(sample name, labels): value}."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, body = request("GET", f"{server.base}/metrics", headers=headers)
    assert status == 200, body
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (sample, found), value in samples.items() if sample == name and wanted <= found)


def call_tool(server: ServerProcess, name: str, arguments: dict[str, Any],
              headers: dict[str, str] | None = None) -> dict[str, Any]:
    """One federation REST tool call on a fresh connection; returns the CallToolResult."""
    status, _, body = request("POST", f"{server.base}/mcp/tools/call", {"name": name, "arguments": arguments},
                              headers={"Content-Type": "application/json", **(headers or {})})
    assert status == 200, body
    return body  # type: ignore[no-any-return]


@dataclass
class HttpReply:
    status: int
    headers: dict[str, str]
    body: Any


def request(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
            raw: bytes | None = None, timeout: float = 30.0) -> tuple[int, dict[str, str], Any]:
    """One HTTP request on a fresh connection; the body is decoded as JSON when it is JSON."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=payload,
                     headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        reply_headers = {key.lower(): value for key, value in response.getheaders()}
    finally:
        conn.close()
    decoded: Any = data
    if reply_headers.get("content-type", "").startswith("application/json") and data:
        decoded = json.loads(data)
    return response.status, reply_headers, decoded


JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def rpc(url: str, method: str, params: dict[str, Any] | None = None, *, id: Any = 1,
        headers: dict[str, str] | None = None) -> HttpReply:
    """A raw JSON-RPC request over POST /mcp."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if id is not None:
        message["id"] = id
    if params is not None:
        message["params"] = params
    status, reply_headers, body = request("POST", url, message, {**JSON_HEADERS, **(headers or {})})
    return HttpReply(status=status, headers=reply_headers, body=body)


MODERN = "2026-07-28"


def modern_meta(version: str = MODERN) -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "0"},
    }


def modern_rpc(url: str, method: str, params: dict[str, Any] | None = None, *, id: Any = 1,
               headers: dict[str, str] | None = None, version: str = MODERN) -> HttpReply:
    """A raw request in the 2026-07-28 envelope with matching routing headers."""
    body_params = {**(params or {}), "_meta": modern_meta(version)}
    routing = {"MCP-Protocol-Version": version, "Mcp-Method": method}
    if method in ("tools/call", "prompts/get"):
        routing["Mcp-Name"] = str(body_params.get("name"))
    if method == "resources/read":
        routing["Mcp-Name"] = str(body_params.get("uri"))
    return rpc(url, method, body_params, id=id, headers={**routing, **(headers or {})})


def initialize(url: str, version: str = "2025-11-25") -> tuple[str, str]:
    """Handshake over raw HTTP; returns (session id, negotiated revision)."""
    reply = rpc(url, "initialize", {"protocolVersion": version, "capabilities": {},
                                    "clientInfo": {"name": "raw-test", "version": "0"}})
    assert reply.status == 200, reply.body
    session = reply.headers["mcp-session-id"]
    negotiated = reply.body["result"]["protocolVersion"]
    rpc(url, "notifications/initialized", None, id=None,
        headers={"Mcp-Session-Id": session, "MCP-Protocol-Version": negotiated})
    return session, negotiated


def session_rpc(url: str, session: str, version: str, method: str, params: dict[str, Any] | None = None,
                id: Any = 1) -> HttpReply:
    return rpc(url, method, params, id=id, headers={"Mcp-Session-Id": session, "MCP-Protocol-Version": version})


@contextlib.asynccontextmanager
async def sdk_client(url: str, revision: str, *, keepalive: bool = True,
                     headers: dict[str, str] | None = None, auth: Any = None) -> AsyncIterator[Any]:
    """The official MCP Python SDK client, speaking exactly ``revision`` (with extra HTTP ``headers``,
    such as a bearer token, on every request; ``auth``: one of the SDK's OAuth client providers).

    The SDK offers its newest handshake revision in ``initialize``; for older
    ones its module constant is set for the length of the block (the server
    must then negotiate what the client asked for).
    """
    import httpx2
    import mcp.client.session as client_session
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client

    limits = None if keepalive else httpx2.Limits(max_keepalive_connections=0)
    http_client = None
    if limits is not None or headers or auth is not None:
        http_client = httpx2.AsyncClient(timeout=httpx2.Timeout(30.0), headers=headers, auth=auth,
                                         **({"limits": limits} if limits is not None else {}))
    mode = revision if revision == MODERN else "legacy"
    saved = client_session.LATEST_HANDSHAKE_VERSION
    if mode == "legacy":
        client_session.LATEST_HANDSHAKE_VERSION = revision
    try:
        async with Client(streamable_http_client(url, http_client=http_client), mode=mode) as client:
            assert client.protocol_version == revision
            yield client
    finally:
        client_session.LATEST_HANDSHAKE_VERSION = saved
        if http_client is not None:
            await http_client.aclose()
