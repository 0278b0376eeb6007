"""Streaming replication on loopback for the tests and benchmarks: a hot standby of a local cluster.

A standby is made the way operators make one: ``pg_basebackup -R`` (which
writes ``primary_conninfo`` and ``standby.signal``) from a running primary,
then started on a port of its own. :func:`promote` is ``pg_ctl promote``;
:func:`pause_replay` / :func:`resume_replay` call PostgreSQL's
``pg_wal_replay_pause()`` / ``pg_wal_replay_resume()`` on the standby. Every
server command runs as the ``postgres`` user when this process is root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from devkit import devdb

__all__ = ["make_standby", "pause_replay", "promote", "replicated", "resume_replay", "wait_streaming"]

Prepared = TypeVar("Prepared")


@contextlib.contextmanager
def replicated(prefix: str, prepare: Callable[[devdb.Cluster], Prepared], *, options: str = "-c fsync=off",
               ) -> Iterator[tuple[devdb.Cluster, devdb.Cluster, Prepared]]:
    """A primary, prepared by ``prepare`` (roles, data: whatever the standby must start with), and a hot
    standby streaming from it, in a temporary folder; yields (primary, standby, what ``prepare`` returned)
    and removes both on exit. ``options`` are the server options of both."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o755)  # the postgres user must reach the clusters' folders
    primary = devdb.create_cluster(base / "primary", devdb.free_port())
    standby = None
    try:
        devdb.start_cluster(primary, extra_options=options)
        prepared = prepare(primary)
        standby = make_standby(primary, base / "standby", extra_options=options)
        wait_streaming(primary)
        yield primary, standby, prepared
    finally:
        for cluster in (standby, primary):
            if cluster is not None:
                devdb.stop_cluster(cluster, mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


def make_standby(primary: devdb.Cluster, base: Path, *, extra_options: str = "") -> devdb.Cluster:
    """Clone ``primary`` (running) into a hot standby under ``base``, start it, and return it."""
    standby = devdb.Cluster(base=base, port=devdb.free_port())
    base.mkdir(parents=True)
    standby.socket_dir.mkdir()
    for path in (base, standby.socket_dir):
        devdb.give_to_postgres(path)
    devdb.run_command(devdb.as_postgres([str(devdb.PG_BIN / "pg_basebackup"), "-D", str(standby.data_dir), "-R",
                                   "-X", "stream", "-c", "fast", "--no-sync", "-d", primary.superuser_dsn()]),
               what="pg_basebackup")
    devdb.start_cluster(standby, extra_options=f"-c hot_standby=on {extra_options}")
    return standby


def wait_streaming(primary: devdb.Cluster, *, timeout_s: float = 30) -> None:
    """Wait until the primary sees a standby streaming from it (it connects a moment after starting)."""
    deadline = time.monotonic() + timeout_s
    while devdb.psql(primary, sql="SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").strip() \
            in ("", "0"):
        if time.monotonic() > deadline:
            raise devdb.DevDbError(f"no standby streams from the primary on port {primary.port} after {timeout_s:g} s")
        time.sleep(0.1)


def promote(standby: devdb.Cluster) -> None:
    """``pg_ctl promote`` the standby and wait until it accepts writes."""
    devdb.run_command(devdb.as_postgres([str(devdb.PG_BIN / "pg_ctl"), "-D", str(standby.data_dir), "-w", "-t", "60",
                                   "promote"]), what="pg_ctl promote")


def pause_replay(standby: devdb.Cluster) -> None:
    """Stop applying WAL on the standby (it still receives it): its data falls behind from now on."""
    devdb.psql(standby, sql="SELECT pg_wal_replay_pause()")


def resume_replay(standby: devdb.Cluster) -> None:
    devdb.psql(standby, sql="SELECT pg_wal_replay_resume()")
