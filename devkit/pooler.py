"""A throwaway PgBouncer in transaction mode in front of a local cluster, for the tests and the benchmark.

Operators put a transaction-mode pooler (PgBouncer, RDS Proxy, Cloud SQL's)
between many server workers and PostgreSQL. Such a pooler hands each
*transaction* to whichever backend is free and refuses or drops startup
parameters such as ``options``, so every guarantee of the server must hold
per transaction. This module runs the real thing (Debian's ``pgbouncer``
1.18) so tests can prove it: as the ``postgres`` user when we are root
(PgBouncer refuses to run as root), with its own ini file, trust
authentication towards its clients and the roles' passwords in its
``auth_file`` for the logins it makes to PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from devkit.devdb import Cluster, DevDbError, free_port

__all__ = ["Pooler", "start_pgbouncer"]

PGBOUNCER = os.environ.get("PGBOUNCER", "/usr/sbin/pgbouncer")


@dataclass
class Pooler:
    """A running PgBouncer: where it listens and how to stop it."""

    base: Path
    port: int
    proc: subprocess.Popen[bytes]
    host: str = "127.0.0.1"

    @property
    def log_file(self) -> Path:
        return self.base / "pgbouncer.log"

    def url(self, *, user: str, password: str, dbname: str) -> str:
        """A URL through the pooler (it authenticates clients by trust, PostgreSQL by password)."""
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{dbname}"

    def repoint(self, cluster: Cluster) -> None:
        """Send new server connections to ``cluster`` (what a failover hook does): rewrite the ini file's
        database line and ``RELOAD`` through the admin console."""
        ini = self.base / "pgbouncer.ini"
        lines = ini.read_text().splitlines(keepends=True)
        lines = [f"* = host={cluster.host} port={cluster.port}\n" if line.startswith("* = ") else line
                 for line in lines]
        ini.write_text("".join(lines))
        conn = psycopg2.connect(host=self.host, port=self.port, user="postgres", dbname="pgbouncer")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("RELOAD")
        finally:
            conn.close()

    def stop(self) -> None:
        """SIGTERM (PgBouncer exits at once, closing its connections), then wait."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _ini(cluster: Cluster, base: Path, port: int, *, pool_size: int, ignore_options: bool,
         settings: dict[str, str]) -> str:
    ignored = "extra_float_digits, options" if ignore_options else "extra_float_digits"
    extra = "".join(f"{name} = {value}\n" for name, value in settings.items())
    return f"""[databases]
* = host={cluster.host} port={cluster.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {base}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
max_client_conn = 500
ignore_startup_parameters = {ignored}
server_reset_query =
logfile = {base}/pgbouncer.log
pidfile = {base}/pgbouncer.pid
admin_users = postgres
{extra}"""


def start_pgbouncer(cluster: Cluster, base: Path, *, users: dict[str, str], pool_size: int = 4,
                    ignore_options: bool = False, settings: dict[str, str] | None = None) -> Pooler:
    """Start PgBouncer in transaction mode in front of ``cluster`` and wait until it accepts connections.

    ``users`` maps each role to its password (PgBouncer logs in to PostgreSQL
    with it). Without ``ignore_options`` a client that sends the libpq
    ``options`` startup parameter is refused ("unsupported startup parameter"),
    PgBouncer's default; with it, the parameter is accepted and silently dropped. ``settings`` adds lines
    to the ``[pgbouncer]`` section (``query_wait_timeout``...).
    """
    if not Path(PGBOUNCER).exists():
        raise DevDbError(f"{PGBOUNCER} not found: apt-get install -y pgbouncer "
                         "(scripts/ensure-debian-package.sh /usr/sbin/pgbouncer pgbouncer)")
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (base / "userlist.txt").write_text("".join(f'"{user}" "{password}"\n' for user, password in users.items()))
    ini = base / "pgbouncer.ini"
    ini.write_text(_ini(cluster, base, port, pool_size=pool_size, ignore_options=ignore_options,
                        settings=settings or {}))
    as_postgres: dict[str, str] = {}
    if os.geteuid() == 0:
        for path in (base, base / "userlist.txt", ini):
            shutil.chown(path, "postgres", "postgres")
        as_postgres = {"user": "postgres", "group": "postgres"}
    proc = subprocess.Popen([PGBOUNCER, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            **as_postgres)  # type: ignore[call-overload]
    pooler = Pooler(base=base, port=port, proc=proc)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = pooler.log_file.read_text() if pooler.log_file.exists() else ""
            raise DevDbError(f"pgbouncer exited with {proc.returncode}: {log.strip()[-500:]}")
        with contextlib.suppress(OSError), socket.create_connection((pooler.host, port), timeout=0.5):
            return pooler
        time.sleep(0.05)
    pooler.stop()
    raise DevDbError("pgbouncer did not accept connections within 20 s")
