"""Metric writes held back while requests are in flight in this process, then written together.

In multiprocess mode every increment, observation and gauge write goes
through prometheus_client's lock, its fork check and a write to this
process's mmap file; a tool call made a dozen of them (two histograms, four
counters, the pool's gauges at checkout and check-in): 145,000 instructions
of the 978,000 a call cost in process (callgrind, as ``make bench-instructions``
counts them), the largest share of any one part. Held here, a call's writes are a
few dictionary updates under one lock, and each series touched is written
once per flush however many calls touched it.

When they are written: as soon as no request is in flight in this process
(:meth:`MetricBatch.release` by the last one), so a quiet server's figures are
exact the moment a response leaves; while requests are in flight, by a thread
of the worker every ``interval_s``, so a figure another worker's scrape reads
(the pool's gauges during a long query included) is at most that old. Writes
made while no request is in flight (the pool's settler, probes, background
threads) go through at once. What a worker killed with SIGKILL had not yet
written, at most ``interval_s`` of its counts, is lost with it.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from pgmcp_http import process

__all__ = ["FLUSH_INTERVAL_S", "MetricBatch"]

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0


class MetricBatch:
    """Counter increments, histogram observations and latest-state publications, held while requests run.

    Series are prometheus_client label children (or unlabelled metrics). Histograms are written through
    their ``_sum`` / ``_buckets`` / ``_upper_bounds`` (what ``Histogram.observe`` does, per bucket instead
    of per observation; prometheus_client is pinned, and the tests compare the result with ``observe``).
    """

    def __init__(self, interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()  # every write to the series, held or not, is made under it
        self._in_flight = 0
        self._flusher_pid = 0  # the process whose flusher thread runs (a forked worker starts its own)
        self._counts: dict[Any, float] = {}
        self._observed: dict[Any, list[float]] = {}  # histogram -> [sum, count per bucket...]
        self._latest: dict[Hashable, tuple[Callable[[Any], None], Any]] = {}  # key -> publication for the flush

    def hold(self) -> None:
        """A request starts: writes wait until the last request in flight ends (at most ``interval_s``)."""
        with self._lock:
            self._in_flight += 1
        if self._flusher_pid != process.pid():
            self._start_flusher()

    def release(self) -> None:
        """A request ends: write everything held when it was the last one in flight."""
        with self._lock:
            self._in_flight -= 1
            if not self._in_flight:
                self._write_held()

    def inc(self, counter: Any, amount: float = 1.0) -> None:
        with self._lock:
            if self._in_flight:
                self._counts[counter] = self._counts.get(counter, 0.0) + amount
            else:
                counter.inc(amount)

    def observe(self, histogram: Any, amount: float) -> None:
        with self._lock:
            if not self._in_flight:
                histogram.observe(amount)
                return
            held = self._observed.get(histogram)
            if held is None:
                held = self._observed[histogram] = [0.0] * (len(histogram._upper_bounds) + 1)
            held[0] += amount
            if amount == amount:  # NaN falls in no bucket, as with observe()
                held[bisect.bisect_left(histogram._upper_bounds, amount) + 1] += 1  # the first bound >= amount

    def latest(self, key: Hashable, publish: Callable[[Any], None], subject: Any) -> None:
        """Make ``publish(subject)`` now, or at the flush when requests are in flight (only the latest one
        per ``key`` is made then: for figures where only the current state matters, such as the pool's)."""
        with self._lock:
            if self._in_flight:
                self._latest[key] = (publish, subject)
                return
            publish(subject)

    def flush(self) -> None:
        """Write everything held now (before a scrape or a health answer in this process)."""
        with self._lock:
            self._write_held()

    def _start_flusher(self) -> None:
        """Start this process's flusher thread (a forked worker has none: threads do not survive fork)."""
        with self._lock:
            pid = process.pid()
            if self._flusher_pid == pid:
                return
            self._flusher_pid = pid
        threading.Thread(target=self._flush_forever, name="pgmcp-metric-flusher", daemon=True).start()

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.interval_s)
            self.flush()

    def _write_held(self) -> None:
        counts, observed, latest = self._counts, self._observed, self._latest
        if not (counts or observed or latest):
            return
        self._counts, self._observed, self._latest = {}, {}, {}
        for counter, amount in counts.items():
            _write(counter.inc, amount)
        for histogram, held in observed.items():
            _write(histogram._sum.inc, held[0])
            for bucket, count in zip(histogram._buckets, held[1:], strict=True):
                if count:
                    _write(bucket.inc, count)
        for publish, subject in latest.values():
            _write(publish, subject)


def _write(write: Callable[[Any], None], value: Any) -> None:
    """One held write; a failure (a metrics file that cannot grow) is logged and the others still go out,
    and the request that happened to flush is not failed for it."""
    try:
        write(value)
    except Exception as exc:  # noqa: BLE001 - whatever prometheus_client raises, the request goes on
        log.warning("could not write a metric: %s", exc)
