"""Figures of the whole container, read from the files every live process writes.

A probe or a scrape lands on one worker, but its answer must describe the
container. Each process publishes its pool and memory figures as ``livesum``
gauges in the multiprocess directory; summing them over the processes that
are still alive gives the container's figures.

gunicorn's ``child_exit`` removes a dead worker's live-gauge files. This
collector also skips files of a process that no longer exists, so a worker
whose exit hook never ran (the master was busy, a kill raced with a reap)
still stops counting at once.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["ContainerFigures", "LiveMultiProcessCollector", "container_figures", "node_figures"]

_LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM  # exists, owned by someone else
    return True


class LiveMultiProcessCollector:
    """prometheus_client's MultiProcessCollector without the live gauges of dead processes."""

    def __init__(self, path: str, *, registry: CollectorRegistry | None = None,
                 live_sums_only: bool = False, live_all_only: bool = False) -> None:
        self.path = Path(path)
        self.live_sums_only = live_sums_only
        self.live_all_only = live_all_only
        if registry is not None:
            registry.register(self)

    def files(self) -> list[str]:
        """The files to read: every counter and histogram, the live gauges of live processes."""
        pattern = "gauge_livesum_*.db" if self.live_sums_only else "gauge_liveall_*.db" if self.live_all_only \
            else "*.db"
        chosen = []
        for path in self.path.glob(pattern):
            match = _LIVE_GAUGE_FILE.match(path.name)
            if match is None or _alive(int(match.group(1))):
                chosen.append(str(path))
        return chosen

    def collect(self) -> Iterable[Metric]:
        return MultiProcessCollector.merge(self.files(), accumulate=True)


@dataclass(frozen=True)
class ContainerFigures:
    """The pool and memory of all live processes together."""

    pool_total: int = 0
    pool_active: int = 0
    pool_idle: int = 0
    workers: int = 0
    memory: dict[str, int] = field(default_factory=dict)


_POOL = {"postgres_mcp_connections_max": "pool_total", "postgres_mcp_connections_active": "pool_active",
         "postgres_mcp_connections_idle": "pool_idle", "postgres_mcp_workers": "workers"}


def node_figures(families: Iterable[Metric], *, own_pid: int) -> list[dict[str, object]]:
    """Each live worker's connections by database node, from ``postgres_mcp_pool_node_connections`` (a
    ``liveall`` gauge: one series per process, labelled with its pid; without multiprocess files, this
    process's own), with a standby's replay lag as that worker last measured it."""
    found: list[dict[str, object]] = []
    lags: dict[tuple[int, str], float] = {}
    for family in families:
        for sample in family.samples:
            labels = sample.labels
            worker = int(labels.get("pid", own_pid))
            if sample.name == "postgres_mcp_replica_lag_seconds":
                lags[(worker, labels["node"])] = round(sample.value, 3)
            elif sample.name == "postgres_mcp_pool_node_connections" and sample.value > 0:
                found.append({"worker": worker, "node": labels["node"], "role": labels["role"],
                              "connections": int(sample.value)})
    for entry in found:
        if entry["role"] == "standby" and (entry["worker"], entry["node"]) in lags:
            entry["replay_lag_seconds"] = lags[(entry["worker"], entry["node"])]  # type: ignore[index]
    return sorted(found, key=lambda entry: (entry["worker"], entry["node"]))  # type: ignore[return-value]


def container_figures(families: Iterable[Metric]) -> ContainerFigures:
    """Sum the pool, worker and memory gauges of already merged metric families."""
    figures: dict[str, int] = dict.fromkeys(_POOL.values(), 0)
    memory: dict[str, int] = {}
    for family in families:
        for sample in family.samples:
            if sample.name in _POOL:
                figures[_POOL[sample.name]] += int(sample.value)
            elif sample.name == "postgres_mcp_memory_usage_bytes" and "type" in sample.labels:
                kind = sample.labels["type"]
                memory[kind] = memory.get(kind, 0) + int(sample.value)
    return ContainerFigures(memory=memory, **figures)
