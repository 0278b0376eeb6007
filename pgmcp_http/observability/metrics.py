"""The server's Prometheus metrics, added up over every gunicorn worker of the container.

Names of the design guide are kept exactly (``postgres_mcp_queries_total``,
``postgres_mcp_query_duration_seconds``, ``postgres_mcp_connections_active``,
``postgres_mcp_memory_usage_bytes``, ``postgres_mcp_database_connected``,
``postgres_mcp_memory_limit_bytes``); the rest share the prefix.

Under gunicorn, prometheus_client runs in multiprocess mode (see
:mod:`~pgmcp_http.observability.metrics_dir`): each process writes its figures
to its own files and a scrape, whichever worker answers it, reads them all.
Each gauge therefore says how processes combine:

- ``livesum`` for what the container holds right now (connections, memory,
  workers): a dead worker's share disappears with it;
- ``livemostrecent`` for ``database_connected``: the latest verdict of any
  live process, whether it came from a probe or from a tool call;
- ``livemax``/``livemin`` for figures every process shares (limit, start).

Counters and histograms are summed over every process that ever lived, so a
worker that is killed and replaced never makes a total go backwards.

While requests are in flight, a process holds its writes back and makes them
together (:mod:`~pgmcp_http.observability.batching`): at once when the last
request ends, at least every second under constant load.

Without PROMETHEUS_MULTIPROC_DIR (the app run in one process) the same metrics
live in this object's own registry. Label values are bounded: a client cannot
create series by sending made-up method names or revisions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import choose_encoder

from pgmcp_http import process
from pgmcp_http.db import Pool
from pgmcp_http.observability.batching import MetricBatch
from pgmcp_http.observability.container import (
    ContainerFigures,
    LiveMultiProcessCollector,
    container_figures,
    node_figures,
)

__all__ = ["DURATION_BUCKETS", "Metrics", "MetricsSetupError"]

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MEMORY_TYPES = ("rss", "heap_used", "heap_total")
OTHER = "other"
REFUSAL_REASONS = ("concurrent", "rate")
REFUSAL_SURFACES = ("mcp", "rest")


class MetricsSetupError(RuntimeError):
    """prometheus_client was loaded in the wrong mode for this process."""


class Metrics:
    """Every metric of one process, and the ways the server records into them."""

    def __init__(self, *, multiprocess_dir: str | None, tools: Iterable[str], methods: Collection[str],
                 versions: Collection[str], slow_query_ms: int, memory_limit: int | None) -> None:
        if multiprocess_dir is not None and not getattr(values.ValueClass, "_multiprocess", False):
            raise MetricsSetupError(
                "prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set, so workers would not "
                "add up; start the server with gunicorn.conf.py (it sets the directory first)"
            )
        self.multiprocess_dir = multiprocess_dir
        if multiprocess_dir is not None and not getattr(values.ValueClass, "_pgmcp_pid", False):
            # Each value checks on every write whether the process forked; let it read the remembered
            # pid instead of calling getpid() (a dozen writes per tool call). Once per process: each
            # such class keeps its own table of open files, and two would write one file each their way.
            values.ValueClass = values.MultiProcessValue(process_identifier=process.pid)
            values.ValueClass._pgmcp_pid = True
        self.registry = CollectorRegistry(auto_describe=True)
        self._methods = frozenset(methods)
        self._versions = frozenset(versions)
        self._tools = frozenset(tools)
        self._slow_s = slow_query_ms / 1000 if slow_query_ms > 0 else None
        self.batch = MetricBatch()
        self._pool_lock = threading.Lock()
        self._pool_counts: dict[str, int] = {"connect_errors": 0, "discarded": 0}
        self._pool_written: tuple[int, tuple[int, int, int, int]] = (0, (-1, -1, -1, -1))  # pid, gauge values
        self._tool_series: dict[tuple[str, str], tuple[Any, Any, Any]] = {}  # label children, kept (bounded)
        self._rpc_series: dict[tuple[str, str, str, str], Any] = {}
        self._connected_written = (-1, 0.0)  # the last database_connected value this process wrote, and when
        self._cpu_lock = threading.Lock()
        self._cpu_seen = (0, 0.0)  # (pid, CPU seconds already counted): a forked worker starts again at 0
        r = self.registry

        # The design guide's metrics.
        self.queries = Counter("postgres_mcp_queries", "Tool calls, by whether they succeeded", ["status"],
                               registry=r)
        self.query_duration = Histogram("postgres_mcp_query_duration_seconds",
                                        "Tool call duration, from arguments received to result ready",
                                        buckets=DURATION_BUCKETS, registry=r)
        self.connections_active = Gauge("postgres_mcp_connections_active",
                                        "Database connections serving a call right now", registry=r,
                                        multiprocess_mode="livesum")
        self.memory = Gauge("postgres_mcp_memory_usage_bytes",
                            "Memory of the gunicorn master and live workers, summed (rss counts shared pages "
                            "once per process)", ["type"], registry=r, multiprocess_mode="livesum")
        self.database_connected = Gauge("postgres_mcp_database_connected",
                                        "1 when PostgreSQL answered the latest probe or tool call, else 0",
                                        registry=r, multiprocess_mode="livemostrecent")
        self.memory_limit: Gauge | None = None
        if memory_limit is not None:
            self.memory_limit = Gauge("postgres_mcp_memory_limit_bytes",
                                      "Memory the container may use: its cgroup limit, else the machine's memory",
                                      registry=r, multiprocess_mode="livemax")

        # Tools, slow calls, MCP methods.
        self.tool_calls = Counter("postgres_mcp_tool_calls", "Tool calls by tool and outcome (ok, refused, "
                                  "timeout, cancelled, db_error, busy, unavailable, stale, invalid_arguments, error)",
                                  ["tool", "outcome"], registry=r)
        self.slow_calls = Counter("postgres_mcp_slow_queries", "Tool calls slower than SLOW_QUERY_MS", ["tool"],
                                  registry=r)
        self.rpc_requests = Counter("postgres_mcp_rpc_requests", "MCP JSON-RPC messages by method, protocol "
                                    "revision, era (handshake, modern, rest) and result (ok, error)",
                                    ["method", "protocol_version", "era", "result"], registry=r)
        self.caller_refusals = Counter("postgres_mcp_caller_refusals", "Calls refused at once because their "
                                       "caller was over its fair share, by reason (concurrent: CALLER_MAX_CONCURRENT, "
                                       "rate: CALLER_RATE_LIMIT) and surface (mcp, rest); never by caller",
                                       ["reason", "surface"], registry=r)

        # The pool.
        self.connections_idle = Gauge("postgres_mcp_connections_idle", "Open database connections not in use",
                                      registry=r, multiprocess_mode="livesum")
        self.connections_max = Gauge("postgres_mcp_connections_max",
                                     "Database connections the workers may open (MAX_CONNECTIONS as split)",
                                     registry=r, multiprocess_mode="livesum")
        self.pool_waiting = Gauge("postgres_mcp_pool_waiting", "Calls waiting for a free connection right now",
                                  registry=r, multiprocess_mode="livesum")
        self._pool_series = (self.connections_active, self.connections_idle, self.connections_max, self.pool_waiting)
        self.pool_nodes = Gauge("postgres_mcp_pool_node_connections", "Open database connections of each worker "
                                "(pid), by node (host:port as libpq reached it) and role (primary, standby)",
                                ["node", "role"], registry=r, multiprocess_mode="liveall")
        self._nodes_written: tuple[int, int, frozenset[tuple[str, str]]] = (0, -1, frozenset())
        self.replica_lag = Gauge("postgres_mcp_replica_lag_seconds", "How far behind the primary each standby "
                                 "was at each worker's (pid) latest measurement: 0 while replay keeps up with the "
                                 "WAL received", ["node"], registry=r, multiprocess_mode="liveall")
        self.pool_wait = Histogram("postgres_mcp_pool_wait_seconds",
                                   "Time calls waited for a connection, when every one was in use",
                                   buckets=WAIT_BUCKETS, registry=r)
        self.pool_timeouts = Counter("postgres_mcp_pool_timeouts", "Waits for a connection that ended in "
                                     "'server busy' (POOL_CONNECTION_TIMEOUT)", registry=r)
        self.pool_connect_errors = Counter("postgres_mcp_pool_connect_errors",
                                           "Failed attempts to open a database connection", registry=r)
        self.pool_discarded = Counter("postgres_mcp_pool_discarded", "Connections closed because they broke, "
                                      "were left mid-transaction or sat idle too long", registry=r)

        # The processes.
        self.cpu = Counter("postgres_mcp_cpu_seconds", "CPU time used by the gunicorn master and workers "
                           "(sampled every few seconds)", registry=r)
        self.workers = Gauge("postgres_mcp_workers", "Live gunicorn workers", registry=r,
                             multiprocess_mode="livesum")
        self.started = Gauge("postgres_mcp_start_time_seconds", "Unix time the server started", registry=r,
                             multiprocess_mode="livemin")

        # Series that exist from the start, so rate() and alerts see a 0 rather than nothing.
        for status in ("success", "error"):
            self.queries.labels(status=status)
        self._refusal_series = {(reason, surface): self.caller_refusals.labels(reason=reason, surface=surface)
                                for reason in REFUSAL_REASONS for surface in REFUSAL_SURFACES}
        for tool in sorted(self._tools):
            self.tool_calls.labels(tool=tool, outcome="ok")
            self.slow_calls.labels(tool=tool)
        self._exposed = self._exposition_registry()

    # -- recording ---------------------------------------------------------

    def tool_called(self, name: str, arguments: Mapping[str, Any], outcome: str, seconds: float) -> None:
        """One finished tool call (the Toolbox's observer)."""
        tool = name if name in self._tools else OTHER
        series = self._tool_series.get((tool, outcome))
        if series is None:  # label lookups cost more than the increments: done once per (tool, outcome)
            series = (self.queries.labels(status="success" if outcome == "ok" else "error"),
                      self.tool_calls.labels(tool=tool, outcome=outcome), self.slow_calls.labels(tool=tool))
            self._tool_series[(tool, outcome)] = series
        batch = self.batch
        batch.inc(series[0])
        batch.observe(self.query_duration, seconds)
        batch.inc(series[1])
        if self._slow_s is not None and seconds >= self._slow_s:
            batch.inc(series[2])
        if outcome == "ok":
            self._connected(1)
        elif outcome == "unavailable":
            self._connected(0)

    def _connected(self, value: int) -> None:
        """Record a tool call's verdict on PostgreSQL: at once when it changes, else at most once a second
        (``livemostrecent`` keeps the latest write of any process, so a process that agrees with itself
        must still write now and then or an older verdict of another process would stand)."""
        now = time.monotonic()
        last_value, last_at = self._connected_written
        if value != last_value or now - last_at >= 1.0:
            self.database_connected.set(value)
            self._connected_written = (value, now)

    def rpc_request(self, *, method: str | None, version: str | None, era: str | None, failed: bool) -> None:
        """One MCP message (or federation REST call) as the access log saw it."""
        if method is None:
            return
        labels = (method if method in self._methods else OTHER,
                  version if version in self._versions else ("none" if version is None else OTHER),
                  era if era in ("handshake", "modern", "rest") else OTHER,
                  "error" if failed else "ok")
        series = self._rpc_series.get(labels)
        if series is None:
            series = self._rpc_series[labels] = self.rpc_requests.labels(*labels)
        self.batch.inc(series)

    def caller_refused(self, reason: str, surface: str) -> None:
        """One call refused for its caller's fair share (``reason`` concurrent or rate, ``surface`` mcp or rest)."""
        series = self._refusal_series.get((reason, surface))
        if series is not None:
            self.batch.inc(series)

    def database_probed(self, ok: bool) -> None:
        self.database_connected.set(1 if ok else 0)
        self._connected_written = (1 if ok else 0, time.monotonic())

    def pool_changed(self, pool: Pool) -> None:
        """Publish the pool's figures (the Pool's observer): called twice per tool call (checkout and
        check-in), so while requests are in flight only the figures as of the next flush are published."""
        self.batch.latest(pool, self._publish_pool, pool)

    def _publish_pool(self, pool: Pool) -> None:
        """Write the pool's figures; serialized so the latest state wins. Only the gauges whose value
        moved are written, and the figures are read without building a snapshot."""
        with self._pool_lock:  # read and written under one lock: a later reading is never overwritten
            in_use, idle, size, waiting, connect_errors, discarded = pool.figures()
            if pool.closed:
                in_use = idle = size = waiting = 0
            pid = process.pid()  # a forked worker writes its own file: it starts with nothing written
            if self._pool_written[0] != pid:
                self._pool_written = (pid, (-1, -1, -1, -1))
            written = self._pool_written[1]
            current = (in_use, idle, size, waiting)
            if current != written:
                for gauge, value, before in zip(self._pool_series, current, written, strict=True):
                    if value != before:
                        gauge.set(value)
                self._pool_written = (pid, current)
            self._publish_nodes(pool, pid)
            for name, total, counter in (("connect_errors", connect_errors, self.pool_connect_errors),
                                         ("discarded", discarded, self.pool_discarded)):
                if total > self._pool_counts[name]:
                    counter.inc(total - self._pool_counts[name])
                    self._pool_counts[name] = total

    def _publish_nodes(self, pool: Pool, pid: int) -> None:
        """Which nodes this worker's connections are on; read again only when a connection opened or closed."""
        seen_pid, generation, written = self._nodes_written
        if seen_pid == pid and generation == pool.generation:
            return
        generation = pool.generation
        nodes = {} if pool.closed else pool.nodes()
        for node, role in written - set(nodes):
            self.pool_nodes.labels(node=node, role=role).set(0)
        for (node, role), count in nodes.items():
            self.pool_nodes.labels(node=node, role=role).set(count)
        self._nodes_written = (pid, generation, frozenset(nodes))

    def replica_measured(self, node: str, seconds: float) -> None:
        """A standby's lag as a worker just measured it (the LagWatch's observer)."""
        self.replica_lag.labels(node=node).set(seconds)

    def pool_waited(self, seconds: float, *, timed_out: bool) -> None:
        self.batch.observe(self.pool_wait, seconds)
        if timed_out:
            self.batch.inc(self.pool_timeouts)

    def publish_process(self, usage: Mapping[str, int], cpu_seconds: float) -> None:
        """This process's memory (its share of ``postgres_mcp_memory_usage_bytes``) and the CPU time
        it used since the previous sample."""
        for kind in MEMORY_TYPES:
            if kind in usage:
                self.memory.labels(type=kind).set(usage[kind])
        pid = process.pid()
        with self._cpu_lock:
            seen_pid, seen = self._cpu_seen
            counted = seen if seen_pid == pid else 0.0
            if cpu_seconds > counted:
                self.cpu.inc(cpu_seconds - counted)
                self._cpu_seen = (pid, cpu_seconds)

    def process_started(self, *, started_at: float, memory_limit: int | None, worker: bool) -> None:
        """Figures a process sets once: the server's start time, the memory limit, one more worker."""
        self.started.set(started_at)
        if self.memory_limit is not None and memory_limit is not None:
            self.memory_limit.set(memory_limit)
        if worker:
            self.workers.set(1)

    # -- reading -----------------------------------------------------------

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The whole container's metrics in the format the scraper asked for (text or OpenMetrics)."""
        encoder, content_type = choose_encoder(accept or "")
        self.batch.flush()
        return encoder(self._exposed), content_type

    def nodes(self) -> list[dict[str, Any]]:
        """Per live worker, the database nodes its pool holds connections to (for /health)."""
        self.batch.flush()
        if self.multiprocess_dir is None:
            families = self.registry.collect()
        else:
            families = LiveMultiProcessCollector(self.multiprocess_dir, live_all_only=True).collect()
        return node_figures(families, own_pid=process.pid())

    def container(self) -> ContainerFigures:
        """Pool and memory figures of the whole container (every live process), for /health."""
        self.batch.flush()
        if self.multiprocess_dir is None:
            return container_figures(self.registry.collect())
        return container_figures(LiveMultiProcessCollector(self.multiprocess_dir, live_sums_only=True).collect())

    def _exposition_registry(self) -> CollectorRegistry:
        if self.multiprocess_dir is None:
            return self.registry
        exposed = CollectorRegistry(auto_describe=False)
        LiveMultiProcessCollector(self.multiprocess_dir, registry=exposed)
        return exposed
