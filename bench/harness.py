"""What every benchmark needs: a throwaway PostgreSQL, a live gunicorn, and a way to read memory.

Benchmarks print figures; they assert nothing. Each one starts its own
cluster in a temporary directory (as the ``postgres`` user when run as root)
and stops it on exit.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devkit import devdb  # noqa: E402
from pgmcp_http.config import load_settings  # noqa: E402

GUNICORN = Path(sys.executable).parent / "gunicorn"
RESULTS = REPO / "bench" / "results"


def describe_machine(sharing: str) -> str:
    """The commit, the cores and what shares them (``sharing``), and the load average now: what a figure read
    later needs beside it."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    load_avg = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True,
                            text=True, check=False).stdout.strip() or "unknown"
    return f"commit {commit}; {os.cpu_count()} cores ({cpu}); {sharing}; load average at the end {load_avg}"


def save_result(heading: str, body: str) -> None:
    """With BENCH_SAVE=1 (``make ... SAVE=1``), keep a run in ``bench/results/<UTC date>.md``: the day's first
    run opens the file under ``# heading``, later ones are appended under ``## heading``, never replacing."""
    if os.environ.get("BENCH_SAVE") != "1":
        return
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d}.md"
    opening = "\n\n## " if path.exists() else "# "
    with path.open("a") as results:
        results.write(f"{opening}{heading}\n\n{body.rstrip()}\n")
    print(f"kept in {path}")


@dataclass(frozen=True)
class BenchDatabase:
    cluster: devdb.Cluster
    readonly_url: str
    readonly_password: str

    def psql(self, sql: str, dbname: str = devdb.SAMPLE_DB) -> str:
        return devdb.psql(self.cluster, dbname=dbname, sql=sql)


@contextlib.contextmanager
def database() -> Iterator[BenchDatabase]:
    """A fresh cluster with the sample database and the read-only role."""
    base = Path(tempfile.mkdtemp(prefix="pgmcp-bench-"))
    os.chmod(base, 0o755)
    cluster = devdb.create_cluster(base / "pg", devdb.free_port())
    devdb.start_cluster(cluster, extra_options="-c fsync=off -c full_page_writes=off -c max_connections=200")
    password = secrets.token_urlsafe(12)
    try:
        yield BenchDatabase(cluster, devdb.load_sample(cluster, password=password), password)
    finally:
        devdb.stop_cluster(cluster, mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    ready_s: float = 0.0  # from launching gunicorn to the first 200 on the readiness path

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@contextlib.contextmanager
def server(url: str, *, workers: int | None = 1, threads: int | None = 4, env: dict[str, str] | None = None,
           ready_path: str = "/health") -> Iterator[Server]:
    """gunicorn as the README runs it, on a free port, until ``ready_path`` answers 200.

    ``workers``/``threads`` None keep the server's own defaults; the log level
    is ``warning`` unless ``env`` says otherwise (``make bench`` keeps ``info``:
    every request logged, as in production).
    """
    port = devdb.free_port()
    full_env = {key: value for key, value in os.environ.items()
                if not key.startswith(("DATABASE_URL", "PG", "WEB_CONCURRENCY", "THREADS"))}
    full_env.update({"DATABASE_URL": url, "PORT": str(port), "BIND_HOST": "127.0.0.1", "LOG_LEVEL": "warning"})
    if workers is not None:
        full_env["WEB_CONCURRENCY"] = str(workers)
    if threads is not None:
        full_env["THREADS"] = str(threads)
    full_env.update(env or {})
    log = Path(tempfile.mkstemp(prefix="pgmcp-bench-", suffix=".log")[1])
    started = time.monotonic()
    with log.open("wb") as sink:
        proc = subprocess.Popen([str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=REPO, env=full_env,
                                stdout=sink, stderr=subprocess.STDOUT)
    running = Server(proc, port, log)
    try:
        _wait_healthy(running, path=ready_path)
        running.ready_s = time.monotonic() - started
        _wait_all_workers(running, load_settings(full_env).workers)
        yield running
    finally:
        running.stop()
        log.unlink(missing_ok=True)


def _wait_healthy(srv: Server, timeout: float = 30, path: str = "/health") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{srv.log.read_text()}")
        with contextlib.suppress(OSError):
            status, _ = get(srv.port, path)
            if status == 200:
                return
        time.sleep(0.02)
    raise RuntimeError(f"gunicorn did not become healthy:\n{srv.log.read_text()}")


def _wait_all_workers(srv: Server, expected: int, timeout: float = 30) -> None:
    """Until every worker has started (``postgres_mcp_workers``, set by each worker after fork): the first
    answer comes from the first worker up, and gunicorn forks the others one by one after it, so load
    started at once would find every connection on the first worker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = get(srv.port, "/metrics")
        if status == 200 and _gauge(body.decode(), "postgres_mcp_workers") >= expected:
            return
        time.sleep(0.02)
    raise RuntimeError(f"fewer than {expected} workers started within {timeout:g} s:\n{srv.log.read_text()}")


def _gauge(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def call_tool(port: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """tools/call through the REST route; raises when the tool reports an error."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/mcp/tools/call", json.dumps({"name": name, "arguments": arguments}),
                     {"Content-Type": "application/json"})
        reply = conn.getresponse()
        body = json.loads(reply.read())
    finally:
        conn.close()
    if reply.status != 200 or body.get("isError"):
        raise RuntimeError(f"{name} failed: {body}")
    return body["structuredContent"]


def sequential_calls(port: int, calls: int, *, headers: dict[str, str] | None = None,
                     sql: str = "SELECT id FROM users WHERE id = $1") -> list[float]:
    """Seconds each of ``calls`` ``query`` calls took, one at a time over one kept-alive connection (the key
    varies, 1 to 50); raises on the first failure."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    sent = {"Content-Type": "application/json", **(headers or {})}
    samples: list[float] = []
    for number in range(calls):
        body = json.dumps({"name": "query", "arguments": {"sql": sql, "params": [number % 50 + 1]}})
        started = time.perf_counter()
        conn.request("POST", "/mcp/tools/call", body=body, headers=sent)
        reply = conn.getresponse()
        data = reply.read()
        samples.append(time.perf_counter() - started)
        if reply.status != 200 or b'"isError":false' not in data:
            raise RuntimeError(f"call failed: {reply.status} {data[:300]!r}")
    conn.close()
    return samples


def print_latencies(medians: dict[str, list[float]], *, rounds: int, calls: int) -> None:
    """One line per configuration: the median of its rounds' medians, and how it compares with the first."""
    baseline = statistics.median(next(iter(medians.values())))
    print(f"tools/call `query` one at a time, {rounds} rounds x {calls} calls, median latency per configuration")
    width = max(len(name) for name in medians) + 2
    print(f"{'configuration':<{width}} {'median ms':>10} {'vs first':>9} {'added us':>9}")
    for name, values in medians.items():
        median = statistics.median(values)
        print(f"{name:<{width}} {median * 1000:>10.3f} {median / baseline:>8.3f}x {(median - baseline) * 1e6:>9.0f}")


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
