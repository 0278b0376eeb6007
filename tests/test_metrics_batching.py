"""Metric writes held while requests are in flight (observability/batching.py): nothing lost, nothing
changed, and written as soon as the process is idle."""

from __future__ import annotations

import logging
import math
import threading
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pgmcp_http.observability.batching import MetricBatch

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
AMOUNTS = [0.0, 0.0001, 0.005, 0.0050001, 0.01, 0.3, 1.0, 2.5, 7.0, 5.0, math.inf, -1.0, 0.02, 0.02, math.nan]


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples if not s.name.endswith("_created")}


def test_held_observations_give_the_histogram_observe_would_give() -> None:
    direct, held = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("d", "d", ["tool"], buckets=BUCKETS, registry=direct)
    batched = Histogram("d", "d", ["tool"], buckets=BUCKETS, registry=held)
    batch = MetricBatch()
    batch.hold()
    for number, amount in enumerate(AMOUNTS):
        tool = "query" if number % 3 else "explain"
        reference.labels(tool=tool).observe(amount)
        batch.observe(batched.labels(tool=tool), amount)
    assert samples(held)[("d_count", (("tool", "query"),))] == 0  # held: nothing written yet
    batch.release()
    got, want = samples(held), samples(direct)
    query_sum = ("d_sum", (("tool", "query"),))
    assert math.isnan(got.pop(query_sum)) and math.isnan(want.pop(query_sum))
    assert got == want  # NaN in no bucket, as observe() does


def test_nothing_is_written_until_the_last_request_in_flight_ends() -> None:
    registry = CollectorRegistry()
    calls = Counter("calls", "c", registry=registry)
    batch = MetricBatch()
    batch.hold()
    batch.hold()
    batch.inc(calls)
    batch.inc(calls, 2.5)
    batch.release()
    assert registry.get_sample_value("calls_total") == 0  # the other request is still in flight
    batch.inc(calls)
    batch.release()
    assert registry.get_sample_value("calls_total") == 4.5


def test_writes_with_no_request_in_flight_go_through_at_once() -> None:
    registry = CollectorRegistry()
    calls = Counter("calls", "c", registry=registry)
    waits = Histogram("waits", "w", buckets=BUCKETS, registry=registry)
    batch = MetricBatch()
    batch.inc(calls)
    batch.observe(waits, 0.02)
    assert registry.get_sample_value("calls_total") == 1
    assert registry.get_sample_value("waits_bucket", {"le": "0.025"}) == 1


def test_under_constant_load_writes_are_made_every_interval() -> None:
    """A request that never ends (a long query) does not keep another's counts or the pool's state back
    for longer than the interval: the worker's flusher thread writes them."""
    registry = CollectorRegistry()
    calls = Counter("calls", "c", registry=registry)
    in_use = Gauge("in_use", "g", registry=registry)
    batch = MetricBatch(interval_s=0.05)
    batch.hold()  # the long query: the process is never idle
    batch.hold()
    batch.inc(calls)
    batch.latest("pool", in_use.set, 1)
    batch.release()
    assert registry.get_sample_value("calls_total") == 0  # held for now
    deadline = time.monotonic() + 30  # generous: a loaded machine may schedule the thread late
    while registry.get_sample_value("calls_total") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert registry.get_sample_value("calls_total") == 1
    assert registry.get_sample_value("in_use") == 1

    patient = MetricBatch(interval_s=3600.0)
    patient.hold()
    patient.hold()
    patient.inc(calls)
    patient.release()
    assert registry.get_sample_value("calls_total") == 1  # an hour has not passed
    patient.flush()  # what a scrape or a health answer in this process does first
    assert registry.get_sample_value("calls_total") == 2


def test_a_failed_write_is_logged_and_the_others_still_go_out(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    calls = Counter("calls", "c", registry=registry)

    def broken(value: int) -> None:
        raise OSError("No space left on device")

    batch = MetricBatch()
    batch.hold()
    batch.latest("broken", broken, 1)
    batch.inc(calls)
    with caplog.at_level(logging.WARNING):
        batch.release()  # does not raise: the request that flushes is not failed for it
    assert registry.get_sample_value("calls_total") == 1
    assert "could not write a metric: No space left on device" in caplog.text


def test_only_the_latest_state_is_published_and_at_once_when_idle() -> None:
    registry = CollectorRegistry()
    in_use = Gauge("in_use", "g", registry=registry)
    published: list[int] = []

    def publish(value: int) -> None:
        published.append(value)
        in_use.set(value)

    batch = MetricBatch()
    batch.latest("pool", publish, 1)
    assert published == [1]
    batch.hold()
    for value in (2, 3, 0):
        batch.latest("pool", publish, value)
    batch.latest("other pool", publish, 7)
    assert published == [1]
    batch.release()
    assert published == [1, 0, 7]
    assert registry.get_sample_value("in_use") == 7


def test_no_count_is_lost_between_threads() -> None:
    registry = CollectorRegistry()
    calls = Counter("calls", "c", ["outcome"], registry=registry)
    durations = Histogram("durations", "d", buckets=BUCKETS, registry=registry)
    batch = MetricBatch(interval_s=0.001)
    ok = calls.labels(outcome="ok")

    def serve() -> None:
        for number in range(2000):
            batch.hold()
            batch.inc(ok)
            batch.observe(durations, (number % 7) / 100)
            batch.release()

    threads = [threading.Thread(target=serve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert registry.get_sample_value("calls_total", {"outcome": "ok"}) == 16_000
    assert registry.get_sample_value("durations_count") == 16_000
    assert registry.get_sample_value("durations_bucket", {"le": "0.05"}) == 8 * sum(
        1 for number in range(2000) if (number % 7) / 100 <= 0.05)
