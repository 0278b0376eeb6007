"""Clients that hang up mid-call: their statement is cancelled on PostgreSQL, not left to run to its timeout.

An agent that gives up on a slow query (a timeout of its own, a user who
pressed stop, a crashed process) closes its connection; without this, the
statement would keep a backend and a pool slot busy for up to QUERY_TIMEOUT.
The request's thread cannot notice (it waits inside libpq), so one small
thread per worker looks every ``interval_s`` at the client sockets of the
requests in flight. A socket that reads as closed (end of stream, or an
error) means the client is gone: the connection that request's thread holds
is cancelled through :meth:`pgmcp_http.db.Pool.cancel_held_by`, and the call
ends as ``cancelled``.

Peeking never consumes bytes, so a pipelined next request is left for
gunicorn. As in Go's net/http, a client that half-closes its sending side
after the request counts as gone (HTTP clients do not do that; use a
keep-alive connection or just wait for the answer).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pgmcp_http import process

__all__ = ["DisconnectWatcher", "WatchDisconnects", "peer_closed"]

Cancel = Callable[[int], bool]


def peer_closed(sock: socket.socket) -> bool:
    """Whether the other end closed (or reset) ``sock``, without consuming what it sent."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


@dataclass
class _InFlight:
    thread_id: int
    sock: socket.socket
    since: float
    cancelled: bool = False
    cancelling: bool = False  # the cancel request is on its way: the request may not end before it is sent


class DisconnectWatcher:
    """Requests in flight in this process, and the thread that cancels those whose client left.

    The thread starts with the first request (so never in a preloading
    gunicorn master, only in the worker that serves) and costs one wake-up per
    ``interval_s``.
    """

    def __init__(self, *, cancel: Cancel, interval_s: float = 0.2) -> None:
        self._cancel = cancel
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._cancel_sent = threading.Condition(self._lock)
        self._in_flight: dict[int, _InFlight] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0
        self.cancelled = 0

    @contextmanager
    def watch(self, sock: socket.socket) -> Iterator[None]:
        """Watch ``sock`` while the body of the ``with`` runs on this thread."""
        key = self.start(sock)
        try:
            yield
        finally:
            self.stop(key)

    def start(self, sock: socket.socket) -> int:
        """Begin watching ``sock`` for this thread; pass the key returned to :meth:`stop`."""
        entry = _InFlight(thread_id=threading.get_ident(), sock=sock, since=time.monotonic())
        key = id(entry)
        with self._lock:
            self._in_flight[key] = entry
        if self._pid != process.pid():
            self._start_thread()
        return key

    def stop(self, key: int) -> None:
        """Stop watching; once this returns no cancel can reach the thread's next request."""
        with self._lock:
            entry = self._in_flight.pop(key)
            while entry.cancelling:
                self._cancel_sent.wait()

    def check(self) -> int:
        """One pass: cancel the calls whose client is gone (and in flight for at least ``interval_s``).

        The cancels are sent outside the lock (so requests keep starting and
        ending meanwhile), but a request being cancelled cannot end, and its
        thread cannot start another one, until its cancel has been sent.
        """
        now = time.monotonic()
        with self._lock:
            gone = [entry for entry in self._in_flight.values()
                    if not entry.cancelled and now - entry.since >= self.interval_s and peer_closed(entry.sock)]
            for entry in gone:
                entry.cancelled = entry.cancelling = True
        found = 0
        for entry in gone:
            try:
                found += bool(self._cancel(entry.thread_id))
            finally:
                with self._lock:
                    entry.cancelling = False
                    self._cancel_sent.notify_all()
        with self._lock:
            self.cancelled += found
        return found

    def _start_thread(self) -> None:
        """Start this process's watcher thread (a forked worker has none: threads do not survive fork)."""
        pid = process.pid()
        with self._lock:
            if self._pid == pid:
                return
            self._pid = pid
            self._thread = threading.Thread(target=self._run, name="pgmcp-disconnects", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            self.check()


class WatchDisconnects:
    """WSGI middleware: every request served by gunicorn (``gunicorn.socket`` in the environ) is watched."""

    def __init__(self, app: Callable[..., Iterable[bytes]], watcher: DisconnectWatcher) -> None:
        self.app = app
        self.watcher = watcher

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if not isinstance(sock, socket.socket):
            return self.app(environ, start_response)
        key = self.watcher.start(sock)  # not a `with`: this runs on every request
        try:
            return self.app(environ, start_response)
        finally:
            self.watcher.stop(key)
