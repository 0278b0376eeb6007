"""What the fault tests share: clusters they may stop, steady background load, and a look at the backends.

Tests that stop PostgreSQL use a throwaway cluster of their own, never the
session's. Load is plain HTTP on fresh connections, so a call that fails shows
up as what a client would see (a status, an isError result, or no answer).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2

from devkit import devdb
from tests.helpers import ServerProcess

__all__ = ["Call", "Load", "Throwaway", "active_statements", "raw_call", "throwaway_cluster", "worker_holding"]

FAST_START = "-c fsync=off -c full_page_writes=off"


@dataclass(frozen=True)
class Throwaway:
    cluster: devdb.Cluster
    url: str

    def start(self) -> None:
        devdb.start_cluster(self.cluster, extra_options=FAST_START)

    def stop(self, mode: str = "fast") -> None:
        devdb.stop_cluster(self.cluster, mode=mode)

    def superuser(self) -> Any:
        """A superuser connection in autocommit (close it with contextlib.closing)."""
        conn = psycopg2.connect(self.cluster.superuser_dsn(devdb.SAMPLE_DB))
        conn.autocommit = True
        return conn


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Throwaway]:
    """A cluster with the sample database, to stop and start at will; removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="pgmcp-faults-"))
    os.chmod(base, 0o755)
    cluster = devdb.create_cluster(base / "pg", devdb.free_port())
    devdb.start_cluster(cluster, extra_options=FAST_START)
    try:
        url = devdb.load_sample(cluster, password="faults-" + secrets.token_urlsafe(12))
        yield Throwaway(cluster, url)
    finally:
        devdb.stop_cluster(cluster, mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class Call:
    """One tool call as a client saw it: when it ended, the HTTP status (0: no answer) and the result."""

    at: float
    status: int
    result: dict[str, Any] | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.result is not None and self.result.get("isError") is False

    @property
    def text(self) -> str:
        if self.result is None:
            return self.error
        return str(self.result.get("content", [{}])[0].get("text", ""))


def rest_call(port: int, sql: str, timeout: float = 30.0) -> Call:
    """``POST /mcp/tools/call`` of ``query`` on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/mcp/tools/call", json.dumps({"name": "query", "arguments": {"sql": sql}}),
                     {"Content-Type": "application/json"})
        reply = conn.getresponse()
        body = reply.read()
        result = json.loads(body) if reply.getheader("Content-Type", "").startswith("application/json") else None
        return Call(time.monotonic(), reply.status, result, "" if result is not None else body[:200].decode())
    except (OSError, http.client.HTTPException) as exc:
        return Call(time.monotonic(), 0, None, f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


@dataclass
class Load:
    """``clients`` threads calling ``sql`` back to back until stopped; every call is kept."""

    server: ServerProcess
    clients: int = 4
    sql: str = "SELECT count(*) AS n FROM orders"
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            call = rest_call(self.server.port, self.sql)
            with self._lock:
                self.calls.append(call)
            if not call.ok:
                time.sleep(0.02)  # a client retrying at once while PostgreSQL is down

    def since(self, moment: float) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.at >= moment]


def active_statements(conn: Any, like: str) -> list[tuple[int, str]]:
    """(pid, state) of backends of the server's role whose query text contains ``like`` (a fresh look even
    inside a transaction: psycopg2 2.9's ``with conn`` opens one, and PostgreSQL keeps the first view)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute("SELECT pid, state FROM pg_stat_activity WHERE usename = 'mcp_readonly' AND query LIKE %s "
                    "AND pid <> pg_backend_pid()", (f"%{like}%",))
        return [(int(pid), str(state)) for pid, state in cur.fetchall()]


def raw_call(port: int, sql: str) -> socket.socket:
    """Send a ``tools/call`` on a raw socket and return it without reading the answer."""
    body = json.dumps({"name": "query", "arguments": {"sql": sql}}).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"POST /mcp/tools/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    return sock


def worker_holding(server: ServerProcess, client: socket.socket, workers: set[int]) -> int:
    """The worker whose accepted socket is the server end of ``client`` (from /proc: fds and TCP table)."""
    client_port = client.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        remote_port = int(fields[2].split(":")[1], 16)
        if local_port == server.port and remote_port == client_port:
            inode = fields[9]
    if inode is None:
        raise AssertionError(f"no server socket for client port {client_port}")
    for pid in workers:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
    raise AssertionError(f"no worker holds socket inode {inode}")
