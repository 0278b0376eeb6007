"""This process's id, kept current across fork without a system call each time it is read.

Several things are per process (the database pool, the metrics files, an
audit file's descriptor) and check on every request whether they still
belong to the process using them: after gunicorn forks a worker they do not.
``os.getpid()`` is a system call; reading it on each check cost a few percent
of a request, so the id is read once and again in every forked child.
"""

from __future__ import annotations

import os

__all__ = ["pid"]


class _Pid:
    def __init__(self) -> None:
        self.value = os.getpid()
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self.value = os.getpid()


_current = _Pid()


def pid() -> int:
    """The id of the calling process (the same value os.getpid() returns)."""
    return _current.value
