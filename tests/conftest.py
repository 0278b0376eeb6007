"""Test fixtures: one real PostgreSQL per test session, and live gunicorn servers.

The cluster is started by the suite itself (as the ``postgres`` user when the
suite runs as root, as CI does) and loaded with the sample database and the
read-only role. pytest-postgresql hands out fresh databases cloned from a
template for tests that change data.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_postgresql import factories
from pytest_postgresql.executors.noop import NoopExecutor

from devkit import devdb
from tests.helpers import PgCluster, ServerProcess, serving

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "last: run after every other test (it inspects what they left behind)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``last`` run at the end of the session, whatever file they are in."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    """A PostgreSQL 15 cluster with the sample database, for the whole session."""
    base = Path(tempfile.mkdtemp(prefix="pgmcp-test-"))
    os.chmod(base, 0o755)
    cluster = devdb.create_cluster(base / "pg", devdb.free_port())
    devdb.start_cluster(cluster, extra_options="-c fsync=off -c max_connections=300 -c full_page_writes=off")
    superuser_password = secrets.token_urlsafe(12)
    devdb.psql(cluster, sql=f"ALTER ROLE postgres PASSWORD '{superuser_password}'")
    readonly_password = "ro-" + secrets.token_urlsafe(12)
    url = devdb.load_sample(cluster, password=readonly_password)
    try:
        yield PgCluster(cluster=cluster, readonly_url=url, readonly_password=readonly_password,
                        superuser_password=superuser_password)
    finally:
        devdb.stop_cluster(cluster, mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_executor(pg: PgCluster) -> NoopExecutor:
    """The session cluster, described the way pytest-postgresql expects (its template must exist)."""
    executor = NoopExecutor(host=pg.cluster.host, port=pg.cluster.port, user="postgres",
                            password=pg.superuser_password, dbname="pgmcp_base", options="")
    devdb.psql(pg.cluster, sql=f'CREATE DATABASE "{executor.template_dbname}"')
    return executor


postgresql_proc = factories.postgresql_noproc(depends_on="pg_executor",
                                              load=[REPO / "scripts" / "sample-data.sql"])
postgresql = factories.postgresql("postgresql_proc")


@pytest.fixture(scope="session")
def server(pg: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The default server: 2 gunicorn workers over the sample database."""
    with serving(pg.readonly_url, tmp_path_factory.mktemp("server"), workers=2, threads=4) as proc:
        yield proc
