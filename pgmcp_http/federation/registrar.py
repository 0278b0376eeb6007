"""Self-registration: make the federation's record of this server match ours, and keep it so.

Why it is shaped this way:

- **Never blocks serving.** It runs on a daemon thread started after fork in
  every worker; only the worker holding an exclusive ``flock`` on a file of
  this container does the work, the others wait on the lock. If that worker
  dies the kernel releases the lock and another worker takes over, so the
  registration survives a worker being replaced. Nothing runs in the gunicorn
  master, which forks (a thread busy in ``getaddrinfo`` at fork time can leave
  a child deadlocked).
- **Idempotent.** The federation refuses a second ``POST`` for an id and has
  no update call, so the record is read first: identical → nothing to do;
  different (a new token, endpoint or tool list after a restart) → delete and
  register again; missing → register. Replicas that share an id converge on the
  same record, whichever comes first.
- **Retried with backoff.** 1 s, 2 s, 4 s ... up to 60 s between attempts
  (with jitter, so replicas restarted together do not call in step) until it
  succeeds, then checked again every ``refresh_s`` (5 minutes): a federation
  that restarted with an in-memory registry gets the record back.
- **Never unregisters on shutdown**: other replicas serve the same id.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pgmcp_http.config import Settings
from pgmcp_http.federation.body import registration_body
from pgmcp_http.federation.client import FederationClient, FederationError

__all__ = ["Registrar", "start_registrar"]

log = logging.getLogger(__name__)

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 60.0
REFRESH_S = 300.0


class Registrar:
    """Converges the federation's record for one server id on ``body``."""

    def __init__(self, client: FederationClient, body: dict[str, Any], *, first_delay_s: float = FIRST_DELAY_S,
                 max_delay_s: float = MAX_DELAY_S, refresh_s: float = REFRESH_S) -> None:
        self.client = client
        self.body = body
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.refresh_s = refresh_s

    @property
    def server_id(self) -> str:
        return str(self.body["id"])

    def converge(self) -> str:
        """One attempt; returns what it did (unchanged, registered, replaced) or raises FederationError."""
        current = self.client.get_server(self.server_id)
        if current is not None and _matches(current, self.body):
            return "unchanged"
        if current is not None:
            self.client.unregister(self.server_id)
        status, reply = self.client.register(self.body)
        if status in (200, 201):
            return "replaced" if current is not None else "registered"
        if status == 400 and "already registered" in reply:
            raise FederationError(f"another replica registered {self.server_id} at the same moment; checking again")
        raise FederationError(f"the federation refused the registration of {self.server_id} with {status}: {reply}")

    def run(self, stop: threading.Event) -> None:
        """Converge until ``stop`` is set: retry with backoff while failing, re-check every refresh_s after."""
        delay = self.first_delay_s
        while not stop.is_set():
            try:
                outcome = self.converge()
            except FederationError as exc:
                wait = min(delay, self.max_delay_s) * random.uniform(0.8, 1.2)  # jitter, not security
                log.warning("federation registration failed; retrying", extra={
                    "server_id": self.server_id, "reason": str(exc), "retry_in_s": round(wait, 1)})
                delay = min(delay * 2, self.max_delay_s)
                stop.wait(wait)
                continue
            delay = self.first_delay_s
            level = logging.DEBUG if outcome == "unchanged" else logging.INFO
            log.log(level, f"federation registration {outcome}", extra={
                "server_id": self.server_id, "endpoint": self.body.get("endpoint"), "outcome": outcome,
                "federation": self.client.base_url})
            stop.wait(self.refresh_s)


def _matches(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """The federation's record says what we would send (it adds status and timestamps of its own)."""
    return all(current.get(key) == value for key, value in wanted.items())


def _lock_path() -> Path:
    """A file private to this container's gunicorn master (its metrics directory, else TMPDIR)."""
    base = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.gettempdir()
    return Path(base) / f"pgmcp-federation-{os.getppid()}.lock"


def _run_when_elected(registrar: Registrar, stop: threading.Event, lock_path: Path) -> None:
    """Wait for the container-wide lock (held until this process exits), then register."""
    try:
        handle = lock_path.open("a")
    except OSError as exc:
        log.warning("federation registration disabled: cannot open its lock file", extra={
            "path": str(lock_path), "reason": exc.strerror})
        return
    with contextlib.closing(handle):
        fcntl.flock(handle, fcntl.LOCK_EX)  # blocks until no other worker of this container holds it
        registrar.run(stop)


def start_registrar(settings: Settings, tools: Iterable[str], *,
                    stop: threading.Event | None = None) -> threading.Thread | None:
    """Start self-registration in the background when FEDERATION_URL is set (call in each worker after fork)."""
    if not settings.federation_url or not settings.federation_endpoint:
        return None
    body = registration_body(
        server_id=settings.federation_server_id,
        endpoint=settings.federation_endpoint,
        tools=tools,
        auth_header=settings.auth_header,
        token=settings.auth_tokens[0] if settings.auth_tokens else None,
        read_only=settings.read_only,
    )
    registrar = Registrar(FederationClient(settings.federation_url), body)
    thread = threading.Thread(target=_run_when_elected, args=(registrar, stop or threading.Event(), _lock_path()),
                              name="pgmcp-federation", daemon=True)
    thread.start()
    return thread
