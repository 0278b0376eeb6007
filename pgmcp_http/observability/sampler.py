"""Each worker publishes its own memory and CPU time every few seconds.

A scrape or a health check is answered by one worker, which can refresh only
its own figures; the others' come from their last sample. Pool figures need no
sampling (the pool reports every change), memory and CPU time do.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping

__all__ = ["ProcessSampler", "cpu_seconds"]

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 5.0


def cpu_seconds() -> float:
    """User and system CPU time of this process so far."""
    times = os.times()
    return times.user + times.system


class ProcessSampler:
    """A daemon thread that calls ``publish(measure(), cpu_seconds())`` every ``interval_s`` seconds."""

    def __init__(self, *, measure: Callable[[], Mapping[str, int]],
                 publish: Callable[[Mapping[str, int], float], None], interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self._measure = measure
        self._publish = publish
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """Publish now (also called by the worker answering /health or /metrics)."""
        self._publish(self._measure(), cpu_seconds())

    def start(self) -> None:
        """Sample now and then periodically, in this process (call after fork, never in the master)."""
        self.sample()
        self._thread = threading.Thread(target=self._run, name="pgmcp-process-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except OSError as exc:  # /proc unreadable: keep the last figure, try again later
                log.debug("process sample failed: %s", exc)
