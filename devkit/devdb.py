"""A throwaway local PostgreSQL with the sample database, for `make run` and the tests.

PostgreSQL refuses to run as root, so when this process is root every server
command runs as the ``postgres`` user through ``runuser``. The cluster lives in
a folder of its own (``.devdb/`` for `make run`, a temporary folder for the
tests); nothing outside it is touched.

Run ``python -m devkit.devdb up`` to create (once), start and load the
cluster; it prints the read-only role's ``DATABASE_URL`` on standard output.
``python -m devkit.devdb down`` stops it.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Cluster",
    "DevDbError",
    "READONLY_ROLE",
    "SAMPLE_DB",
    "as_postgres",
    "create_cluster",
    "free_port",
    "give_to_postgres",
    "load_sample",
    "psql",
    "run_command",
    "start_cluster",
    "stop_cluster",
]

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = REPO_ROOT / "scripts"
SAMPLE_DB = "sampledb"
READONLY_ROLE = "mcp_readonly"
DEFAULT_PORT = 54329


class DevDbError(RuntimeError):
    """The local PostgreSQL could not be created, started or loaded."""


@dataclass(frozen=True)
class Cluster:
    """Where a local cluster lives and how to reach it."""

    base: Path
    port: int
    host: str = "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "run"

    @property
    def log_file(self) -> Path:
        return self.base / "postgres.log"

    def superuser_dsn(self, dbname: str = "postgres") -> str:
        """A libpq DSN for the ``postgres`` superuser over the Unix socket (trust auth)."""
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={dbname}"

    def url(self, *, user: str, password: str, dbname: str) -> str:
        """A ``postgresql://`` URL over TCP for a password-authenticated role."""
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{dbname}"


def _is_root() -> bool:
    return os.geteuid() == 0


def as_postgres(cmd: list[str]) -> list[str]:
    """Prefix ``cmd`` so it runs as the ``postgres`` user when we are root."""
    if not _is_root():
        return cmd
    if shutil.which("runuser") is None:
        raise DevDbError("running as root needs `runuser` to start PostgreSQL as the postgres user")
    return ["runuser", "-u", "postgres", "--", *cmd]


def run_command(cmd: list[str], *, what: str, input_text: str | None = None) -> str:
    proc = subprocess.run(cmd, input=input_text, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit status {proc.returncode}"
        raise DevDbError(f"{what} failed: {last}")
    return proc.stdout


def give_to_postgres(path: Path) -> None:
    """Make ``path`` owned by the postgres user when we are root (it must own its data)."""
    if _is_root():
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_cluster(base: Path, port: int) -> Cluster:
    """initdb a new cluster under ``base`` (if it has none yet) and return it.

    Local (socket) connections trust the OS user; TCP connections need a
    password (scram-sha-256), so the server under test authenticates the way
    it would in production.
    """
    cluster = Cluster(base=base, port=port)
    if (cluster.data_dir / "PG_VERSION").exists():
        return cluster
    if not (PG_BIN / "initdb").exists():
        raise DevDbError(f"PostgreSQL server binaries not found in {PG_BIN}; run scripts/install-postgres.sh")
    base.mkdir(parents=True, exist_ok=True)
    cluster.socket_dir.mkdir(exist_ok=True)
    for path in (base, cluster.socket_dir):
        give_to_postgres(path)
    run_command(
        as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(cluster.data_dir),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ]
        ),
        what="initdb",
    )
    return cluster


def is_running(cluster: Cluster) -> bool:
    proc = subprocess.run(
        as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(cluster.data_dir), "status"]),
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


def start_cluster(cluster: Cluster, *, extra_options: str = "") -> None:
    """Start the cluster (if it is not running) and wait until it accepts connections."""
    if is_running(cluster):
        return
    options = f"-p {cluster.port} -k {cluster.socket_dir} -c listen_addresses={cluster.host} {extra_options}"
    run_command(
        as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(cluster.data_dir),
                "-l",
                str(cluster.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ]
        ),
        what=f"starting PostgreSQL on port {cluster.port} (log: {cluster.log_file})",
    )


def stop_cluster(cluster: Cluster, *, mode: str = "fast") -> None:
    """Stop the cluster; ``mode`` is pg_ctl's shutdown mode (smart, fast, immediate)."""
    if not is_running(cluster):
        return
    run_command(
        as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(cluster.data_dir), "-m", mode, "-w", "stop"]),
        what="stopping PostgreSQL",
    )


def psql(cluster: Cluster, *, dbname: str = "postgres", sql: str | None = None, file: Path | None = None,
         variables: dict[str, str] | None = None) -> str:
    """Run SQL as the superuser with psql (stops at the first error) and return its output."""
    cmd = [
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-At",
        "-d",
        cluster.superuser_dsn(dbname),
    ]
    for name, value in (variables or {}).items():
        cmd += ["-v", f"{name}={value}"]
    if file is not None:
        cmd += ["-f", str(file)]
    return run_command(as_postgres(cmd), what=f"psql {file.name if file else 'command'}", input_text=sql)


def load_sample(cluster: Cluster, *, password: str, dbname: str = SAMPLE_DB, role: str = READONLY_ROLE) -> str:
    """Create ``dbname`` with the sample data and the read-only role; return its URL.

    Idempotent: an existing database is left as it is, and the role's password
    is (re)set to ``password``.
    """
    exists = psql(cluster, sql=f"SELECT 1 FROM pg_database WHERE datname = '{dbname}'").strip()
    if not exists:
        psql(cluster, sql=f'CREATE DATABASE "{dbname}"')
        psql(cluster, dbname=dbname, file=SCRIPTS / "sample-data.sql")
        # analyze_query verifies index advice with hypopg when the extension is there.
        psql(cluster, dbname=dbname, sql="""
            SELECT 'CREATE EXTENSION IF NOT EXISTS hypopg'
            FROM pg_available_extensions WHERE name = 'hypopg' \\gexec""")
    psql(
        cluster,
        dbname=dbname,
        file=SCRIPTS / "create-readonly-role.sql",
        variables={"role": role, "password": password, "schemas": "public,app"},
    )
    return cluster.url(user=role, password=password, dbname=dbname)


def _dev_password(base: Path) -> str:
    """The dev role's password: made once, kept in a file only its owner reads."""
    path = base / "readonly_password"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(18)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def up(base: Path, port: int) -> str:
    """Create, start and load the dev cluster; return the read-only role's URL."""
    cluster = create_cluster(base, port)
    start_cluster(cluster)
    return load_sample(cluster, password=_dev_password(base))


def main(argv: list[str]) -> int:
    base = Path(os.environ.get("DEVDB_DIR", REPO_ROOT / ".devdb")).resolve()
    port = int(os.environ.get("DEVDB_PORT", DEFAULT_PORT))
    command = argv[1] if len(argv) > 1 else "up"
    try:
        if command == "up":
            started = time.monotonic()
            url = up(base, port)
            print(url)
            print(f"devdb: sample database ready on 127.0.0.1:{port} in {time.monotonic() - started:.1f}s "
                  f"(data in {base})", file=sys.stderr)
        elif command == "down":
            stop_cluster(Cluster(base=base, port=port))
        else:
            print(f"usage: python -m devkit.devdb [up|down] (got {command!r})", file=sys.stderr)
            return 2
    except DevDbError as exc:
        print(f"devdb: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
