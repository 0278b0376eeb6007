"""A database, roles and callers for the identity, audit and tracing tests.

One database (``identity_db``) on the session cluster, with a table under
row-level security keyed both on ``pgmcp.subject`` (analysts see their own
rows) and on roles (support sees the EU rows), a table only analysts may
read, a login role that can only switch (NOINHERIT, granted the caller
roles), and a token file naming six callers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devkit import devdb
from tests.helpers import PgCluster

DB = "identity_db"
LOGIN = "pgmcp_login13"
ANALYST, SUPPORT, NOBODY = "analyst13", "support13", "nobody13"

SETUP = f"""
CREATE ROLE {ANALYST} NOLOGIN;
CREATE ROLE {SUPPORT} NOLOGIN;
CREATE ROLE {NOBODY} NOLOGIN;
CREATE ROLE {LOGIN} LOGIN NOINHERIT PASSWORD '%(password)s';
GRANT {ANALYST}, {SUPPORT}, {NOBODY} TO {LOGIN};
CREATE DATABASE {DB};
"""

SCHEMA = f"""
CREATE TABLE docs (id int PRIMARY KEY, owner text NOT NULL, region text NOT NULL, body text NOT NULL);
INSERT INTO docs VALUES (1, 'alice', 'eu', 'a1'), (2, 'alice', 'us', 'a2'), (3, 'bob', 'eu', 'b3'),
                        (4, 'bob', 'us', 'b4'), (5, 'carol', 'eu', 'c5');
ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON docs FOR SELECT TO {ANALYST} USING (owner = current_setting('pgmcp.subject', true));
CREATE POLICY eu_rows ON docs FOR SELECT TO {SUPPORT} USING (region = 'eu');
GRANT SELECT ON docs TO {ANALYST}, {SUPPORT};
-- TOOLS_FILE is planned at start-up as the login role: it may read docs (RLS gives it no row)
GRANT SELECT ON docs TO {LOGIN};
CREATE TABLE analyst_notes (id int, note text);
INSERT INTO analyst_notes VALUES (1, 'for analysts');
GRANT SELECT ON analyst_notes TO {ANALYST};
-- only analysts may use these: a caller without their role must not learn their names from docs' description
CREATE TABLE analyst_refs (doc int REFERENCES docs (id));
CREATE TABLE analyst_docs () INHERITS (docs);
GRANT SELECT ON analyst_refs, analyst_docs TO {ANALYST};
CREATE FUNCTION whoami() RETURNS text LANGUAGE sql STABLE AS $$ SELECT current_setting('pgmcp.subject', true) $$;
"""

TOOLS = """
tools:
  - name: docs_in_region
    description: The documents of one region that the caller may read.
    parameters:
      - name: region
        type: string
        description: eu or us
    sql: SELECT id FROM docs WHERE region = $1 ORDER BY id
"""

TOKENS = {name: f"tok-{name}-{secrets.token_hex(12)}" for name in ("alice", "bob", "carol", "dave", "erin", "frank")}
ROLES = {"alice": ANALYST, "bob": ANALYST, "carol": SUPPORT, "dave": NOBODY, "erin": "ghost13", "frank": None}


@dataclass(frozen=True)
class IdentityDb:
    login_url: str
    superuser_url: str
    login_password: str
    tokens_file: Path
    tools_file: Path

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[who]}"}


def prepare(pg: PgCluster, workdir: Path) -> IdentityDb:
    """Create (once per session) the roles, the database and the token file."""
    password = "login-" + secrets.token_hex(8)
    exists = devdb.psql(pg.cluster, sql=f"SELECT 1 FROM pg_roles WHERE rolname = '{LOGIN}'").strip()
    if exists:
        devdb.psql(pg.cluster, sql=f"ALTER ROLE {LOGIN} PASSWORD '{password}'")
    else:
        devdb.psql(pg.cluster, sql=SETUP % {"password": password})
        devdb.psql(pg.cluster, dbname=DB, sql=SCHEMA)
    lines = []
    for name, token in TOKENS.items():
        role = ROLES[name]
        if name == "bob":  # one entry given by its digest, as an operator who keeps no plain tokens would
            lines.append(f"{name}: {{sha256: {hashlib.sha256(token.encode()).hexdigest()}, role: {role}}}")
        else:
            lines.append(f"{name}: {{token: {token}" + (f", role: {role}}}" if role else "}"))
    tokens_file = workdir / "callers.yaml"
    tokens_file.write_text("# callers of the identity tests\n" + "\n".join(lines) + "\n")
    tools_file = workdir / "tools.yaml"
    tools_file.write_text(TOOLS)
    return IdentityDb(login_url=pg.cluster.url(user=LOGIN, password=password, dbname=DB),
                      superuser_url=pg.superuser_url(DB), login_password=password, tokens_file=tokens_file,
                      tools_file=tools_file)


@contextlib.contextmanager
def pgbouncer(pg: PgCluster, *, user: str, password: str, pool_size: int = 2) -> Iterator[int]:
    """PgBouncer 1.18 in transaction mode in front of the session cluster (as the ``postgres`` user when
    root, in a directory that user can reach); yields its port. Startup ``options`` are ignored, as an
    operator would configure it for libpq clients."""
    home = Path(tempfile.mkdtemp(prefix="pgmcp-bouncer-"))
    os.chmod(home, 0o755)
    port = devdb.free_port()
    (home / "users.txt").write_text(f'"{user}" "{password}"\n')
    (home / "pgbouncer.ini").write_text(
        f"[databases]\n* = host={pg.cluster.host} port={pg.cluster.port}\n[pgbouncer]\nlisten_addr = 127.0.0.1\n"
        f"listen_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {home}/users.txt\n"
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 200\n"
        f"ignore_startup_parameters = extra_float_digits, options\nserver_reset_query =\n"
        f"logfile = {home}/pgbouncer.log\n")
    owner: dict[str, str] = {}
    if os.geteuid() == 0:
        for path in (home, home / "users.txt", home / "pgbouncer.ini"):
            shutil.chown(path, "postgres", "postgres")
        owner = {"user": "postgres", "group": "postgres"}
    proc = subprocess.Popen(["/usr/sbin/pgbouncer", str(home / "pgbouncer.ini")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, **owner)  # type: ignore[call-overload]
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not start: {(home / 'pgbouncer.log').read_text()[-500:]}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(home, ignore_errors=True)
