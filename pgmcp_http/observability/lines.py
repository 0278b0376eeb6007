"""Whole JSON lines written with one ``write(2)`` each: the access log and the audit trail.

These two write a line per request, so they skip the ``logging`` machinery
(a LogRecord, the caller's frame, filters, a formatter and a handler lock
cost more than building the line itself). A single ``write`` on a descriptor
opened for appending keeps lines from every thread and every worker whole in
one file, and in a pipe up to PIPE_BUF (4,096 bytes on Linux; a longer line,
such as an audit record with a long statement, may interleave there with
another process's); a line is built first, secrets removed, then written.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from pgmcp_http import process
from pgmcp_http.observability.logs import redact, redactable

__all__ = ["IsoClock", "LineWriter", "json_line"]

log = logging.getLogger(__name__)

_STREAMS = {"stdout": 1, "stderr": 2}


class LineWriter:
    """Appends lines to ``stdout``, ``stderr`` or a file (opened per process, after fork)."""

    def __init__(self, target: str, secrets: Iterable[str] = ()) -> None:
        self.target = target
        plain = redactable(secrets)
        # Lines are redacted once encoded, so also each secret as JSON writes it (quotes, backslashes).
        self.secrets = redactable([*plain, *(orjson.dumps(s).decode("utf-8")[1:-1] for s in plain)])
        self.clock = IsoClock()
        self._fd: int | None = _STREAMS.get(target)
        self._pid = 0
        self._open_lock = threading.Lock()

    def _descriptor(self) -> int:
        if self.target in _STREAMS:
            return _STREAMS[self.target]
        pid = process.pid()
        if self._fd is None or self._pid != pid:
            with self._open_lock:
                if self._fd is None or self._pid != pid:
                    self._fd = os.open(self.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
                    self._pid = pid
        return self._fd

    def write(self, line: str) -> None:
        """Write ``line`` (without its newline) with every configured secret replaced by [REDACTED]."""
        data = redact(line, self.secrets).encode("utf-8", "backslashreplace") + b"\n"
        try:
            descriptor = self._descriptor()
            while data:  # a write can be cut short (a signal, a full pipe): the rest follows
                data = data[os.write(descriptor, data):]
        except OSError as exc:  # never fail the request for it, but say so (as logging's handlers do)
            log.error("could not write a log line to %s: %s", self.target, exc)


class IsoClock:
    """The time as the JSON logs write it, ``2026-11-25T18:59:34.873Z``, with the part up to the second
    formatted once per second (kept as one (second, text) pair, replaced whole, so threads never see
    one half updated)."""

    def __init__(self) -> None:
        self._last: tuple[int, str] = (-1, "")

    def now(self) -> str:
        now = time.time()
        second = int(now)
        last = self._last
        if last[0] != second:
            last = self._last = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{last[1]}.{int((now - second) * 1000):03d}Z"


def json_line(fields: Mapping[str, Any]) -> str:
    """``fields`` as one line of JSON (values orjson cannot encode are written as strings)."""
    return orjson.dumps(fields, default=str).decode("utf-8")
