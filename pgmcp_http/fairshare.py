"""Fair share per caller: a cap on one caller's calls running at once in a worker, and an optional rate.

With identity on, one caller's burst could otherwise take every connection of
a worker while the others wait for one (and get "server busy" after
``POOL_CONNECTION_TIMEOUT``). Each worker therefore counts the calls each
caller has running (``tools/call`` and ``resources/read``, over MCP or REST)
and refuses one more beyond ``CALLER_MAX_CONCURRENT`` at once, without
waiting: the caller over its share is told to retry, everyone else keeps
their latency. Optionally each caller also gets a token bucket of
``CALLER_RATE_LIMIT`` calls per minute per container, split evenly between
the workers (so it is approximate: the kernel, not a balancer, picks the
worker of each connection, and a caller whose connections sit on one worker
reaches that worker's share first).

A caller is its ``(issuer, subject)``: a ``sub`` is unique only per OAuth
issuer, and callers from tokens or key-file JWTs have no issuer. Memory does
not grow with the number of subjects ever seen: a caller's counter is
removed when its last call ends, and a bucket that has filled up again (the
same as no bucket) is dropped by a sweep at most once a minute.

Per worker and per process: nothing is shared between workers or replicas.
The object is built in the gunicorn master before fork (where no call is
ever served), so each worker starts with empty counters.

Pure: no HTTP, no SQL; the web layer turns a :class:`Busy` into a 429 with
``Retry-After`` (REST) or an ``isError`` result (MCP). Imports nothing from
the package but :mod:`pgmcp_http.identity`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from pgmcp_http.identity import ANONYMOUS, Caller

__all__ = ["NO_TURN", "SHARED_METHODS", "Busy", "FairShare", "Turn"]

SHARED_METHODS = frozenset({"tools/call", "resources/read"})
"""The calls that count: those that borrow a database connection on a caller's behalf (not ``initialize``,
``tools/list``, pings...)."""

MAX_SHOWN_SUBJECT = 80
SWEEP_EVERY_S = 60.0

Key = tuple[str, str]


@dataclass(frozen=True)
class Busy:
    """A call refused because its caller is over its share: ``reason`` is ``concurrent`` or ``rate``,
    ``message`` the words the caller reads, ``retry_after_s`` whole seconds to wait (at least 1)."""

    reason: str
    message: str
    retry_after_s: int


class Turn:
    """One call's turn: ``with share.turn(caller) as busy:`` runs the call when ``busy`` is None, and frees
    the caller's slot when the block ends, however it ends."""

    __slots__ = ("_key", "_share")

    def __init__(self, share: FairShare | None, key: Key | None) -> None:
        self._share = share
        self._key = key

    def __enter__(self) -> Busy | None:
        if self._share is None or self._key is None:
            return None
        busy = self._share._enter(self._key)
        if busy is not None:
            self._key = None  # refused: nothing taken, nothing to give back
        return busy

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._share is not None and self._key is not None:
            self._share._leave(self._key)
            self._key = None


NO_TURN = Turn(None, None)
"""The turn of a call that does not count (or of a server with no fair share): always admitted, holds nothing."""


class FairShare:
    """One worker's fair share: ``max_concurrent`` calls at once per caller (None: no cap) and
    ``rate_per_minute`` calls per minute per caller for the whole container (None: no rate), of which this
    worker admits ``rate_per_minute / workers``. ``clock`` is injectable for tests (seconds, monotonic)."""

    def __init__(self, *, max_concurrent: int | None = None, rate_per_minute: float | None = None, workers: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_concurrent is not None and max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1 (None: no cap)")
        if rate_per_minute is not None and not rate_per_minute > 0:
            raise ValueError("rate_per_minute must be above 0 (None: no rate)")
        self.max_concurrent = max_concurrent
        self.rate_per_minute = rate_per_minute
        self.workers = max(1, workers)
        self._clock = clock
        self._lock = threading.Lock()
        self._running: dict[Key, int] = {}
        self._buckets: dict[Key, list[float]] = {}  # key -> [tokens, when they were counted]
        worker_rate = rate_per_minute / self.workers if rate_per_minute is not None else 0.0
        self._capacity = max(1.0, worker_rate)  # a whole minute's share may be spent at once, never less than 1
        self._refill_per_s = worker_rate / 60.0
        self._swept = clock()

    @property
    def enabled(self) -> bool:
        return self.max_concurrent is not None or self.rate_per_minute is not None

    def turn(self, caller: Caller | None) -> Turn:
        """The turn of one call by ``caller`` (None: the anonymous caller); enter it to be admitted or refused."""
        if not self.enabled:
            return NO_TURN
        if caller is None:
            return Turn(self, ("", ANONYMOUS))
        return Turn(self, (caller.issuer or "", caller.subject))

    def running(self, caller: Caller | None = None) -> int:
        """Calls running now: ``caller``'s, or everyone's when None."""
        with self._lock:
            if caller is None:
                return sum(self._running.values())
            return self._running.get((caller.issuer or "", caller.subject), 0)

    def tracked(self) -> tuple[int, int]:
        """How many callers have a counter and how many a bucket (both bounded by the callers active lately)."""
        with self._lock:
            return len(self._running), len(self._buckets)

    # -- the turn's two halves --------------------------------------------

    def _enter(self, key: Key) -> Busy | None:
        with self._lock:
            running = self._running.get(key, 0)
            if self.max_concurrent is not None and running >= self.max_concurrent:
                return self._over_cap(key, running)
            if self.rate_per_minute is not None:
                wait = self._take(key)
                if wait is not None:
                    return self._over_rate(key, wait)
            self._running[key] = running + 1
            return None

    def _leave(self, key: Key) -> None:
        with self._lock:
            left = self._running.get(key, 0) - 1
            if left > 0:
                self._running[key] = left
            else:
                self._running.pop(key, None)

    def _take(self, key: Key) -> float | None:
        """Take a token from ``key``'s bucket (under the lock): None when there was one, else the seconds
        until there is one."""
        now = self._clock()
        if now - self._swept >= SWEEP_EVERY_S:
            self._sweep(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [self._capacity, now]
        tokens = min(self._capacity, bucket[0] + max(0.0, now - bucket[1]) * self._refill_per_s)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return None
        bucket[0] = tokens
        return (1.0 - tokens) / self._refill_per_s

    def _sweep(self, now: float) -> None:
        """Drop the buckets that have filled up again: a full bucket is the same as none."""
        self._swept = now
        full = [key for key, (tokens, stamp) in self._buckets.items()
                if tokens + (now - stamp) * self._refill_per_s >= self._capacity]
        for key in full:
            del self._buckets[key]

    # -- the words ---------------------------------------------------------

    def _over_cap(self, key: Key, running: int) -> Busy:
        calls = "1 call" if running == 1 else f"{running} calls"
        return Busy("concurrent", f"busy: caller {_shown(key)} already has {calls} running in this worker, its fair "
                                  f"share (CALLER_MAX_CONCURRENT={self.max_concurrent}); retry after 1 s", 1)

    def _over_rate(self, key: Key, wait_s: float) -> Busy:
        retry = max(1, math.ceil(wait_s))
        rate = f"{self.rate_per_minute:g}"
        return Busy("rate", f"busy: caller {_shown(key)} is over its fair share of {rate} calls per minute "
                            f"(CALLER_RATE_LIMIT={rate}); retry after {retry} s", retry)


def _shown(key: Key) -> str:
    subject = key[1]
    return repr(subject if len(subject) <= MAX_SHOWN_SUBJECT else subject[:MAX_SHOWN_SUBJECT] + "...")
