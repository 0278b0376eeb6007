"""GET /metrics: the guide's metrics, added up over every gunicorn worker, through worker deaths."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from devkit import devdb
from pgmcp_http.observability.cgroup import memory_limit_bytes
from tests.helpers import (
    TEST_METRICS_TOKEN,
    call_tool,
    initialize,
    modern_rpc,
    request,
    scrape,
    session_rpc,
    start_server,
    total,
    wait_until,
    worker_pids,
)

COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")


@pytest.fixture(scope="module")
def own_role(pg):
    """A login role of its own (member-equivalent of mcp_readonly), so pg_stat_activity can count
    exactly this module's server connections."""
    role = f"obs_{secrets.token_hex(4)}"
    url = devdb.load_sample(pg.cluster, password="obs-" + secrets.token_urlsafe(12), role=role)
    return role, url


@pytest.fixture(scope="module")
def three_workers(pg, own_role, tmp_path_factory):
    server = start_server(own_role[1], tmp_path_factory.mktemp("three"), workers=3, threads=2,
                          env={"MAX_CONNECTIONS": "9"})
    try:
        wait_until(lambda: total(scrape(server), "postgres_mcp_workers") == 3, what="3 live workers")
        yield server
    finally:
        server.stop()


def backends(pg, role: str) -> int:
    """Pool connections PostgreSQL sees for ``role`` (the health probe's own connection excluded)."""
    with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s "
                           "AND application_name = 'pgmcp-http'", (role,)).fetchone()
    assert row is not None
    return int(row[0])


def health_pool(server) -> dict[str, int]:
    status, _, body = request("GET", f"{server.base}/health")
    assert status == 200, body
    return body["connection_pool"]  # type: ignore[no-any-return]


def spread_calls(server, count: int) -> set[int]:
    """``count`` query calls, six at a time on fresh connections; returns the worker pids that served them."""
    def one(i: int) -> None:
        result = call_tool(server, "query", {"sql": "SELECT $1::int AS n, pg_sleep(0.02)", "params": [i]})
        assert result["isError"] is False, result

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(one, range(count)))
    return {line["worker_pid"] for line in server.log_lines()
            if line.get("path") == "/mcp/tools/call" and line.get("tool") == "query"}


def counters(samples) -> dict:
    return {key: value for key, value in samples.items() if key[0].endswith(COUNTER_SUFFIXES)}


@pytest.mark.slow
def test_counters_add_up_over_workers_and_survive_a_killed_worker(pg, own_role, three_workers):
    server = three_workers
    served_by = spread_calls(server, 60)
    assert len(served_by) >= 2, "the calls should have been spread over several workers"

    before = scrape(server)
    assert total(before, "postgres_mcp_queries_total") == 60
    assert total(before, "postgres_mcp_queries_total", status="success") == 60
    assert total(before, "postgres_mcp_tool_calls_total", tool="query", outcome="ok") == 60
    assert total(before, "postgres_mcp_query_duration_seconds_count") == 60

    # /health describes the container: three workers' pools of 9 // 3 connections, and every open
    # connection PostgreSQL sees (whichever worker answers the probe).
    assert total(before, "postgres_mcp_connections_max") == 9
    for _ in range(5):
        pool = health_pool(server)
        assert pool["total"] == 9
        assert pool["active"] + pool["idle"] == backends(pg, own_role[0])

    victim = next(iter(served_by & worker_pids(server)))
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in worker_pids(server) and len(worker_pids(server)) == 3,
               what="the killed worker replaced")
    wait_until(lambda: total(scrape(server), "postgres_mcp_workers") == 3, what="3 live workers again")

    after = scrape(server)
    went_back = {key: (value, after.get(key, 0.0)) for key, value in counters(before).items()
                 if after.get(key, 0.0) < value}
    assert went_back == {}
    assert total(after, "postgres_mcp_queries_total") == 60

    # The dead worker's connections no longer count, neither in /health nor in the gauges.
    assert health_pool(server)["total"] == 9
    assert total(after, "postgres_mcp_connections_max") == 9
    wait_until(lambda: sum(health_pool(server)[k] for k in ("active", "idle")) == backends(pg, own_role[0]),
               what="/health pool figures matching pg_stat_activity")

    spread_calls(server, 12)
    assert total(scrape(server), "postgres_mcp_queries_total") == 72


def test_the_guides_metrics_are_exported_with_their_types(server):
    call_tool(server, "query", {"sql": "SELECT 1 AS one"})
    call_tool(server, "query", {"sql": "DELETE FROM users"})  # refused by the guard
    status, _, body = request("GET", f"{server.base}/metrics")
    assert status == 200
    text = body.decode()
    for name, kind in [("postgres_mcp_queries_total", "counter"),
                       ("postgres_mcp_query_duration_seconds", "histogram"),
                       ("postgres_mcp_connections_active", "gauge"),
                       ("postgres_mcp_memory_usage_bytes", "gauge"),
                       ("postgres_mcp_database_connected", "gauge"),
                       ("postgres_mcp_memory_limit_bytes", "gauge"),
                       ("flask_http_request_duration_seconds", "histogram")]:
        assert f"# TYPE {name} {kind}" in text or f"# TYPE {name.removesuffix('_total')} {kind}" in text, name
    samples = scrape(server)
    assert total(samples, "postgres_mcp_database_connected") == 1
    assert total(samples, "postgres_mcp_queries_total", status="error") >= 1
    assert total(samples, "postgres_mcp_tool_calls_total", tool="query", outcome="refused") >= 1
    for kind in ("rss", "heap_used", "heap_total"):
        assert total(samples, "postgres_mcp_memory_usage_bytes", type=kind) > 0
    assert total(samples, "postgres_mcp_memory_limit_bytes") == memory_limit_bytes()
    assert total(samples, "postgres_mcp_cpu_seconds_total") > 0
    assert total(samples, "flask_http_request_duration_seconds_count", route="/mcp/tools/call") >= 2


def test_mcp_requests_are_counted_by_method_and_revision(server):
    def count(**labels: str) -> float:
        return total(scrape(server), "postgres_mcp_rpc_requests_total", **labels)

    before_legacy = count(method="tools/list", protocol_version="2025-06-18", era="handshake")
    before_modern = count(method="tools/list", protocol_version="2026-07-28", era="modern")
    before_bogus = count(method="other")
    session, version = initialize(server.url, "2025-06-18")
    assert session_rpc(server.url, session, version, "tools/list").status == 200
    assert modern_rpc(server.url, "tools/list").status == 200
    session_rpc(server.url, session, version, "no/such-method-" + secrets.token_hex(4))
    assert count(method="tools/list", protocol_version="2025-06-18", era="handshake") == before_legacy + 1
    assert count(method="tools/list", protocol_version="2026-07-28", era="modern") == before_modern + 1
    assert count(method="other") == before_bogus + 1  # made-up names do not become label values


def test_http_metrics_are_labelled_by_route_not_by_raw_path(server):
    for suffix in ("a", "b", "c"):
        request("GET", f"{server.base}/no-such-page-{secrets.token_hex(3)}-{suffix}")
    text = request("GET", f"{server.base}/metrics")[2].decode()
    assert "no-such-page" not in text
    assert 'route="(unmatched)"' in text


def test_mcp_requests_land_in_the_http_series_whichever_path_served_them(server):
    """POST /mcp is not a Flask view (web/mcp.py) yet counts in prometheus-flask-exporter's series,
    route /mcp, exactly once per request: through the fast lane and through gunicorn's parser."""
    def counts() -> tuple[float, float, float]:
        samples = scrape(server)
        return (total(samples, "flask_http_request_duration_seconds_count", route="/mcp", method="POST",
                      status="200"),
                total(samples, "flask_http_request_total", method="POST", status="200"),
                total(samples, "flask_http_request_duration_seconds_count", route="/mcp", method="GET",
                      status="405"))

    before_ok, before_total, before_405 = counts()
    for _ in range(3):  # an ordinary request: the fast lane
        assert modern_rpc(server.url, "tools/list").status == 200
    body = (b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", '
            b'"capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}')
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:  # chunked: gunicorn's parser
        raw.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    + f"{len(body):x}".encode() + b"\r\n" + body + b"\r\n0\r\n\r\n")
        assert raw.recv(65536).startswith(b"HTTP/1.1 200 ")
    assert request("GET", server.url, headers={"Accept": "text/event-stream"})[0] == 405
    after_ok, after_total, after_405 = counts()
    assert after_ok == before_ok + 4
    assert after_total >= before_total + 4  # other routes count there too (the scrapes are GETs)
    assert after_405 == before_405 + 1


def test_metrics_token_protects_the_endpoint(pg, tmp_path):
    server = start_server(pg.readonly_url, tmp_path, workers=1, threads=2, env={"METRICS_TOKEN": TEST_METRICS_TOKEN})
    try:
        status, headers, body = request("GET", f"{server.base}/metrics")
        assert status == 401 and "Bearer" in headers["www-authenticate"]
        assert "METRICS_TOKEN" in body["error"]
        assert request("GET", f"{server.base}/metrics", headers={"Authorization": "Bearer wrong-token"})[0] == 401
        assert request("GET", f"{server.base}/metrics",
                       headers={"Authorization": f"Basic {TEST_METRICS_TOKEN}"})[0] == 401
        assert total(scrape(server, TEST_METRICS_TOKEN), "postgres_mcp_workers") == 1
        assert request("GET", f"{server.base}/health")[0] == 200  # probes stay open
    finally:
        server.stop()


def test_a_given_metrics_directory_is_emptied_at_start(pg, tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    first = start_server(pg.readonly_url, tmp_path, workers=1, threads=2, env=env)
    try:
        for _ in range(3):
            call_tool(first, "query", {"sql": "SELECT 1 AS one"})
        assert total(scrape(first), "postgres_mcp_queries_total") == 3
    finally:
        first.stop()
    assert list(directory.glob("counter_*.db")), "the first server wrote into the given directory"
    second = start_server(pg.readonly_url, tmp_path, workers=1, threads=2, env=env)
    try:
        assert total(scrape(second), "postgres_mcp_queries_total") == 0
    finally:
        second.stop()


def test_a_long_call_does_not_keep_a_workers_figures_from_the_other_workers(pg, tmp_path):
    """While a request is in flight a worker holds its metric writes (observability/batching.py); a long
    query must not keep the other calls' counts, or the pool gauge of the connection it holds, from
    the files another worker's scrape reads: the worker's flusher writes them within a second."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    server = start_server(pg.readonly_url, tmp_path, workers=1, threads=4,
                          env={"PROMETHEUS_MULTIPROC_DIR": str(directory)})

    def from_the_files(name: str) -> float:
        """A sample summed over its labels, as any worker's scrape reads it, without asking this worker
        (which writes its own first)."""
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(directory))
        return sum(sample.value for family in registry.collect() for sample in family.samples
                   if sample.name == name)

    def sleeping() -> int:
        with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
            return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' "
                                "AND pid <> pg_backend_pid()").fetchone()[0]

    try:
        with ThreadPoolExecutor(1) as executor:
            slow = executor.submit(modern_rpc, server.url, "tools/call",
                                   {"name": "query", "arguments": {"sql": "SELECT pg_sleep(60)"}})
            wait_until(sleeping, what="the long query running")
            before = from_the_files("postgres_mcp_queries_total")
            for _ in range(3):
                assert modern_rpc(server.url, "tools/call", {"name": "query", "arguments": {"sql": "SELECT 1"}}
                                  ).status == 200
            wait_until(lambda: from_the_files("postgres_mcp_queries_total") == before + 3, timeout=20,
                       what="the three quick calls counted in the files while the long one runs")
            wait_until(lambda: from_the_files("postgres_mcp_connections_active") >= 1, timeout=20,
                       what="the long query's connection shown active in the files")
            assert not slow.done()
            with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
                conn.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                             "WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()")
            assert slow.result(timeout=30).status == 200
    finally:
        server.stop()


def test_a_private_metrics_directory_is_removed_on_exit(pg, tmp_path):
    server = start_server(pg.readonly_url, tmp_path, workers=1, threads=1)
    try:
        def private_dir() -> Path | None:
            maps = Path(f"/proc/{server.proc.pid}/maps").read_text()  # the master maps its own metric files
            found = {Path(line.split()[-1]).parent for line in maps.splitlines() if "/pgmcp-metrics-" in line}
            return found.pop() if len(found) == 1 else None

        directory = wait_until(private_dir, what="the master's metrics files")
        assert directory.is_dir() and list(directory.glob("*.db"))
    finally:
        server.stop()
    assert not directory.exists()


def test_memory_limit_reads_cgroup_v1_and_v2_and_falls_back_to_memtotal(tmp_path):
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text("MemTotal:       2048 kB\nMemFree: 1 kB\n")
    root = tmp_path / "cgroup"

    (proc / "self" / "cgroup").write_text("0::/kubepods/pod1/ctr\n")
    (root / "kubepods" / "pod1" / "ctr").mkdir(parents=True)
    (root / "kubepods" / "pod1" / "ctr" / "memory.max").write_text("max\n")
    (root / "kubepods" / "pod1" / "memory.max").write_text("536870912\n")
    assert memory_limit_bytes(proc=proc, cgroup_root=root) == 536870912  # the pod's limit binds

    (proc / "self" / "cgroup").write_text("4:memory:/docker/abc\n0::/\n")
    (root / "memory" / "docker" / "abc").mkdir(parents=True)
    (root / "memory" / "docker" / "abc" / "memory.limit_in_bytes").write_text("268435456\n")
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert memory_limit_bytes(proc=proc, cgroup_root=root) == 268435456

    (root / "memory" / "docker" / "abc" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert memory_limit_bytes(proc=proc, cgroup_root=root) == 2048 * 1024  # no limit: the machine's memory


def test_livez_never_touches_the_database(pg, tmp_path):
    dead = f"postgresql://mcp_readonly:never-used-pw@127.0.0.1:{devdb.free_port()}/sampledb"
    server = start_server(dead, tmp_path, workers=1, threads=2)
    try:
        replies = []
        threads = [threading.Thread(target=lambda: replies.append(request("GET", f"{server.base}/livez")))
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [reply[0] for reply in replies] == [200] * 4
        assert total(scrape(server), "postgres_mcp_database_connected") == 0
    finally:
        server.stop()


URL = "postgresql://reader:pw-1234@db.example:5432/app"


@pytest.mark.parametrize("env,fragment", [
    ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN must be at least 16 printable characters"),
    ({"METRICS_TOKEN": "has a space in it, sixteen+"}, "without spaces"),
    ({"PROMETHEUS_MULTIPROC_DIR": "/nonexistent/metrics"}, "PROMETHEUS_MULTIPROC_DIR=/nonexistent/metrics: no such"),
    ({"SLOW_QUERY_MS": "-1"}, "SLOW_QUERY_MS=-1 is out of range"),
    ({"HEALTH_CHECK_TIMEOUT": "10"}, "HEALTH_CHECK_TIMEOUT=10 is out of range"),
])
def test_observability_settings_are_checked_at_start(env, fragment):
    from pgmcp_http.config import ConfigError, load_settings

    with pytest.raises(ConfigError) as caught:
        load_settings({"DATABASE_URL": URL, **env})
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_metrics_token_may_come_from_a_file_and_is_a_secret(tmp_path):
    from pgmcp_http.config import load_settings

    secret = tmp_path / "token"
    secret.write_text(TEST_METRICS_TOKEN + "\n")
    settings = load_settings({"DATABASE_URL": URL, "METRICS_TOKEN_FILE": str(secret), "SLOW_QUERY_MS": "0",
                              "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    assert settings.metrics_token == TEST_METRICS_TOKEN
    assert (settings.slow_query_ms, settings.metrics_dir) == (0, str(tmp_path))
    assert TEST_METRICS_TOKEN in settings.secret_values() and "pw-1234" in settings.secret_values()
    assert TEST_METRICS_TOKEN not in repr(settings)


def test_a_configuration_reload_keeps_the_counts(pg, tmp_path):
    """SIGHUP makes gunicorn run gunicorn.conf.py again and replace its workers: the metrics
    directory, and every count in it, must stay."""
    server = start_server(pg.readonly_url, tmp_path, workers=2, threads=2)
    try:
        wait_until(lambda: total(scrape(server), "postgres_mcp_workers") == 2, what="2 live workers")
        for _ in range(5):
            call_tool(server, "query", {"sql": "SELECT 1 AS one"})
        old = worker_pids(server)
        os.kill(server.proc.pid, signal.SIGHUP)
        wait_until(lambda: len(worker_pids(server)) == 2 and not worker_pids(server) & old, what="new workers")
        wait_until(lambda: total(scrape(server), "postgres_mcp_workers") == 2, what="2 live workers again")
        samples = scrape(server)
        assert total(samples, "postgres_mcp_queries_total") == 5
        assert total(samples, "postgres_mcp_connections_max") == 10
        assert request("GET", f"{server.base}/health")[2]["connection_pool"]["total"] == 10
    finally:
        server.stop()


def test_the_metrics_directory_is_prepared_once_per_master(tmp_path):
    from pgmcp_http.observability.metrics_dir import ENV_VAR, OWNER_VAR, prepare_metrics_dir

    given = tmp_path / "given"
    given.mkdir()
    (given / "counter_1.db").write_bytes(b"old")

    env: dict[str, str] = {}
    assert prepare_metrics_dir(str(given), env) == given and not list(given.glob("*.db"))  # fresh start: emptied
    (given / "counter_2.db").write_bytes(b"now")
    assert prepare_metrics_dir(str(given), env) == given and list(given.glob("*.db"))  # SIGHUP: kept

    env = {OWNER_VAR: "1:given", ENV_VAR: str(given)}  # a new master (SIGUSR2) on a given directory
    assert prepare_metrics_dir(str(given), env) == given and list(given.glob("*.db"))  # not emptied under the old one

    private = tmp_path / "old-private"
    private.mkdir()
    env = {OWNER_VAR: "1:private", ENV_VAR: str(private)}  # the old master's private directory
    made = prepare_metrics_dir(str(private), env)
    assert made != private and made.name.startswith("pgmcp-metrics-") and env[ENV_VAR] == str(made)
    assert prepare_metrics_dir(str(made), env) == made  # and that master's own SIGHUP keeps it


def test_a_tool_calls_verdict_on_the_database_is_written_at_once_when_it_changes(monkeypatch):
    """database_connected (livemostrecent) from tool calls: a change is written at once; the same verdict
    again at most once a second, but then surely, so another process's older verdict cannot stand."""
    import pgmcp_http.observability.metrics as metrics_module

    now = [1000.0]
    monkeypatch.setattr(metrics_module.time, "monotonic", lambda: now[0])
    metrics = metrics_module.Metrics(multiprocess_dir=None, tools=["query"], methods=["tools/call"],
                                     versions=["2026-07-28"], slow_query_ms=0, memory_limit=None)
    gauge = metrics.database_connected

    def value() -> float:
        return metrics.registry.get_sample_value("postgres_mcp_database_connected") or 0.0

    metrics.tool_called("query", {}, "ok", 0.01)
    assert value() == 1
    metrics.tool_called("query", {}, "unavailable", 0.01)
    assert value() == 0  # a change: at once
    metrics.tool_called("query", {}, "ok", 0.01)
    assert value() == 1
    gauge.set(0)  # another process's probe said "down" since
    now[0] += 0.5
    metrics.tool_called("query", {}, "ok", 0.01)
    assert value() == 0  # the same verdict within a second: not written again
    now[0] += 0.6
    metrics.tool_called("query", {}, "ok", 0.01)
    assert value() == 1  # a second later it is


def test_a_second_metrics_object_in_one_process_keeps_the_same_value_class(tmp_path):
    """Each of prometheus_client's multiprocess value classes keeps its own table of open files: a second
    one in the same process would write the same <type>_<pid>.db through a second table."""
    where = str(tmp_path)
    script = (
        "from prometheus_client import values\n"
        "from pgmcp_http.observability.metrics import Metrics\n"
        f"kw = dict(multiprocess_dir={where!r}, tools=['query'], methods=['tools/call'], versions=['2025-11-25'],\n"
        "          slow_query_ms=0, memory_limit=None)\n"
        "first = Metrics(**kw)\n"
        "chosen = values.ValueClass\n"
        "second = Metrics(**kw)\n"
        "assert values.ValueClass is chosen, 'replaced again'\n"
        "print('same')\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "same", done.stderr
