"""How new connections spread over the workers (the worker's fair accepts)."""

from __future__ import annotations

import contextlib
import http.client
import selectors
import socket
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from pgmcp_http.serving.worker import (
    ACCEPT_STEP_ASIDE_MAX_MS,
    ACCEPT_STEP_ASIDE_MS,
    ACCEPT_WINDOW_MS,
    GuardedThreadWorker,
)
from tests.helpers import ServerProcess, scrape, serving, total, wait_until


class _Worker(GuardedThreadWorker):
    """The worker's accept logic over a real listening socket, without a gunicorn process: accepted
    connections are recorded instead of handed to threads."""

    def __init__(self, listener: socket.socket, *, workers: int, threads: int) -> None:  # no gunicorn init
        self.cfg = SimpleNamespace(workers=workers, threads=threads)
        self.sockets = [listener]
        self.poller = selectors.DefaultSelector()
        self._accepting = False
        self._share_accepts = workers > 1
        self._aside_until = 0.0
        self.nr_conns = 0
        self.accepted: list[Any] = []
        self.set_accept_enabled(True)

    def enqueue_req(self, conn: Any) -> None:
        self.accepted.append(conn)

    def loop_once(self, timeout: float = 0.5) -> None:
        """One turn of gthread's event loop: listen again if allowed, then wait and dispatch."""
        self.set_accept_enabled(True)
        self.wait_for_and_dispatch_events(timeout)


class _Listening:
    """A listening socket and the client connections made to it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.clients: list[socket.socket] = []

    def connect(self) -> None:
        self.clients.append(socket.create_connection(self.sock.getsockname()))

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.sock.close()


@pytest.fixture
def listening() -> Iterator[_Listening]:
    found = _Listening()
    yield found
    found.close()


def test_a_worker_below_its_threads_accepts_at_once(listening):
    worker = _Worker(listening.sock, workers=2, threads=2)
    worker.nr_conns = 1
    listening.connect()
    worker.loop_once()
    assert len(worker.accepted) == 1 and worker._accepting


def test_a_lone_worker_never_steps_aside(listening):
    worker = _Worker(listening.sock, workers=1, threads=1)
    worker.nr_conns = 5
    listening.connect()
    worker.loop_once()
    assert len(worker.accepted) == 1


def test_a_loaded_worker_steps_aside_then_takes_the_connection_nobody_else_took(listening):
    worker = _Worker(listening.sock, workers=2, threads=1)
    worker.nr_conns = 1  # as many connections as threads: the next one would be one beyond
    listening.connect()
    started = time.monotonic()
    worker.loop_once()
    assert worker.accepted == [] and not worker._accepting  # stopped listening
    while not worker.accepted and time.monotonic() - started < 1:
        worker.loop_once()
    waited = time.monotonic() - started
    assert len(worker.accepted) == 1
    assert ACCEPT_STEP_ASIDE_MS / 1000 <= waited < 0.5, waited


def test_the_step_aside_grows_with_the_load_up_to_its_cap(listening):
    worker = _Worker(listening.sock, workers=2, threads=1)
    worker.nr_conns = 3
    listening.connect()
    before = time.monotonic()
    worker.loop_once()
    assert worker._aside_until - before == pytest.approx(3 * ACCEPT_STEP_ASIDE_MS / 1000, abs=0.004)
    worker._aside_until, worker.nr_conns = 0.0, 50
    before = time.monotonic()
    worker.accept(listening.sock)
    assert worker._aside_until - before == pytest.approx(ACCEPT_STEP_ASIDE_MAX_MS / 1000, abs=0.004)


def test_after_a_step_aside_a_burst_is_accepted_without_further_pauses_then_pauses_resume(listening):
    worker = _Worker(listening.sock, workers=2, threads=1)
    worker.nr_conns = 1
    listening.connect()
    while not worker.accepted:
        worker.loop_once()
    for _ in range(5):  # within the window: each is taken at once, none rate-limited
        listening.connect()
    deadline = time.monotonic() + ACCEPT_WINDOW_MS / 2000
    while len(worker.accepted) < 6 and time.monotonic() < deadline:
        worker.loop_once(timeout=0.01)
    assert len(worker.accepted) == 6
    time.sleep(ACCEPT_WINDOW_MS / 1000 + 0.02)  # the window is over: the next connection waits again
    listening.connect()
    worker.loop_once()
    assert len(worker.accepted) == 6 and not worker._accepting


def _served_by(server: ServerProcess, conn: http.client.HTTPConnection) -> int:
    """The pid of the worker that answered a request on ``conn`` (the connection stays open)."""
    conn.request("GET", "/livez")
    reply = conn.getresponse()
    reply.read()
    assert reply.status == 200
    request_id = reply.getheader("X-Request-Id")
    line = wait_until(lambda: next((line for line in server.log_lines() if line.get("request_id") == request_id
                                    and line.get("message") == "request"), None), what="the access line")
    return int(line["worker_pid"])


def test_a_worker_with_a_connection_per_thread_leaves_the_next_connection_to_an_idle_worker(pg, tmp_path):
    """One thread per worker: the worker already holding a keep-alive connection steps aside, so the
    next connection goes to the idle worker (without it, the same worker mostly wins the race)."""
    with serving(pg.readonly_url, tmp_path, workers=2, threads=1) as server:
        wait_until(lambda: total(scrape(server), "postgres_mcp_workers") == 2, what="2 live workers")
        time.sleep(0.5)  # a worker is counted after fork, moments before it listens
        spread = []
        for _ in range(10):
            time.sleep(0.3)  # the previous round's connections are closed and counted out (and the window over)
            with contextlib.closing(http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)) as first, \
                    contextlib.closing(http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)) as second:
                spread.append(_served_by(server, first) != _served_by(server, second))
        assert sum(spread) >= 7, spread  # without the step aside: 1 in 6 here
