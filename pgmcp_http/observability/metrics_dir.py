"""The directory where every gunicorn process writes its Prometheus figures.

prometheus_client adds counters up across processes only in multiprocess
mode, which it chooses **once, when it is first imported**, from
``PROMETHEUS_MULTIPROC_DIR``. So gunicorn.conf.py calls
:func:`prepare_metrics_dir` before the app (and prometheus_client with it) is
loaded in the master; this module must never import prometheus_client at the
top level.

The directory is emptied at start: files of a previous container would
otherwise be added to this one's counters. Without ``PROMETHEUS_MULTIPROC_DIR``
the master makes a private temporary directory and removes it on exit.

gunicorn runs its configuration again on SIGHUP, in the same master: the
directory is then kept as it is (emptying it, or making a new one, would
lose every count so far). A master started by SIGUSR2 (a new process that
inherits the old one's environment) makes its own private directory rather
than adopting, or emptying, the one the old master will remove when it exits.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

__all__ = ["ENV_VAR", "mark_worker_dead", "prepare_metrics_dir"]

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"
OWNER_VAR = "PGMCP_METRICS_DIR_OWNER"  # "<pid>:private" or "<pid>:given", set by the master that prepared it


def prepare_metrics_dir(configured: str | None, environ: MutableMapping[str, str] | None = None) -> Path:
    """Empty ``configured`` (or create a private directory when it is None) and export it as
    PROMETHEUS_MULTIPROC_DIR for this process and its children; return the path."""
    env = os.environ if environ is None else environ
    pid = str(os.getpid())
    owner, _, kind = env.get(OWNER_VAR, "").partition(":")
    if owner == pid and ENV_VAR in env:  # gunicorn re-read its configuration (SIGHUP): keep counting
        return Path(env[ENV_VAR])
    inherited = bool(owner)  # prepared by a previous master of this container (SIGUSR2)
    if configured is None or (inherited and kind == "private"):
        path = Path(tempfile.mkdtemp(prefix="pgmcp-metrics-"))
        atexit.register(_remove_if_owner, path, os.getpid())
        kind = "private"
    else:
        path = Path(configured)
        if not inherited:  # a previous master's workers may still be writing there
            for stale in path.glob("*.db"):
                stale.unlink(missing_ok=True)
        kind = "given"
    env[ENV_VAR] = str(path)
    env[OWNER_VAR] = f"{pid}:{kind}"
    return path


def _remove_if_owner(path: Path, owner_pid: int) -> None:
    """Remove the private directory when the process that made it exits (not when a worker does:
    forked workers inherit this exit handler)."""
    if os.getpid() == owner_pid:
        shutil.rmtree(path, ignore_errors=True)


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (pool, memory) so they stop counting; its counters stay,
    so totals never go backwards when a worker is replaced. Called from gunicorn's child_exit."""
    if ENV_VAR not in os.environ:
        return
    from prometheus_client import multiprocess  # after PROMETHEUS_MULTIPROC_DIR is set, on purpose

    multiprocess.mark_process_dead(pid)
