"""TLS to PostgreSQL against a real server with ``ssl=on`` and a certificate authority made at test time.

The cluster accepts TCP connections only over TLS (``hostnossl ... reject``);
its certificate names ``localhost`` only, so connecting to ``127.0.0.1`` with
``verify-full`` must fail on the host name; the role ``certuser`` may only log
in with a client certificate (``cert`` authentication, i.e. clientcert=verify-full).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devkit import devdb
from tests.helpers import request, start_server


@dataclass(frozen=True)
class TlsCluster:
    cluster: devdb.Cluster
    password: str
    ca: Path
    other_ca: Path
    client_cert: Path
    client_key: Path

    def url(self, host: str = "localhost", user: str = "mcp_readonly", query: str = "") -> str:
        credentials = user if user == "certuser" else f"{user}:{self.password}"
        return f"postgresql://{credentials}@{host}:{self.cluster.port}/sampledb{query}"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=directory)


def issue(directory: Path, ca: str, name: str, *, san: str | None = None) -> None:
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", cwd=directory)
    extra: list[str] = []
    if san:
        (directory / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        extra = ["-extfile", f"{name}.ext"]
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "2", "-out", f"{name}.crt", *extra, cwd=directory)
    os.chmod(directory / f"{name}.key", 0o600)


@pytest.fixture(scope="module")
def tls() -> Iterator[TlsCluster]:
    base = Path(tempfile.mkdtemp(prefix="pgmcp-tls-"))
    os.chmod(base, 0o755)
    certs = base / "certs"
    certs.mkdir()
    make_ca(certs, "ca")
    make_ca(certs, "other-ca")
    issue(certs, "ca", "server", san="DNS:localhost")
    issue(certs, "ca", "certuser")
    cluster = devdb.create_cluster(base / "pg", devdb.free_port())
    devdb.start_cluster(cluster)
    password = "tls-" + secrets.token_urlsafe(10)
    devdb.load_sample(cluster, password=password)
    devdb.psql(cluster, dbname="sampledb", sql="""
        CREATE ROLE certuser LOGIN; GRANT CONNECT ON DATABASE sampledb TO certuser;
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO certuser;""")
    devdb.stop_cluster(cluster)
    server_files = cluster.base / "ssl"
    server_files.mkdir()
    for name in ("server.crt", "server.key", "ca.crt"):
        shutil.copy(certs / name, server_files / name)
    if os.geteuid() == 0:  # the server's key must belong to the postgres user, mode 0600
        entry = pwd.getpwnam("postgres")
        for path in (server_files, *server_files.iterdir()):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    (cluster.data_dir / "pg_hba.conf").write_text(
        "local all all trust\n"
        "hostssl all certuser 127.0.0.1/32 cert\n"
        "hostssl all all 127.0.0.1/32 scram-sha-256\n"
        "hostnossl all all 0.0.0.0/0 reject\n")
    devdb.start_cluster(cluster, extra_options=(
        f"-c ssl=on -c ssl_cert_file={server_files}/server.crt -c ssl_key_file={server_files}/server.key "
        f"-c ssl_ca_file={server_files}/ca.crt"))
    try:
        yield TlsCluster(cluster=cluster, password=password, ca=certs / "ca.crt", other_ca=certs / "other-ca.crt",
                         client_cert=certs / "certuser.crt", client_key=certs / "certuser.key")
    finally:
        devdb.stop_cluster(cluster, mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


def call_query(url: str, env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """Start a one-worker server with ``env``, ask whether its connection is encrypted, stop it."""
    server = start_server(url, workdir, workers=1, threads=1, env=env)
    try:
        status, _, body = request("POST", f"{server.base}/mcp/tools/call", {
            "name": "query", "arguments": {"sql": "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"}},
            headers={"Content-Type": "application/json"})
        assert status == 200, body
        return body
    finally:
        server.stop()


def encrypted(body: dict[str, Any]) -> bool:
    assert body["isError"] is False, body["content"][0]["text"]
    (row,) = body["structuredContent"]["rows"]
    return bool(row["ssl"]) and row["version"].startswith("TLS")


def test_verify_full_with_the_right_ca_and_host(tls, tmp_path):
    assert encrypted(call_query(tls.url(), {"SSL_MODE": "verify-full", "SSL_CA_PATH": str(tls.ca)}, tmp_path))


def test_verify_full_fails_clearly_with_the_wrong_ca(tls, tmp_path):
    body = call_query(tls.url(), {"SSL_MODE": "verify-full", "SSL_CA_PATH": str(tls.other_ca)}, tmp_path)
    assert body["isError"] is True and "certificate verify failed" in body["content"][0]["text"]


def test_verify_full_fails_clearly_on_the_wrong_host_name(tls, tmp_path):
    body = call_query(tls.url(host="127.0.0.1"), {"SSL_MODE": "verify-full", "SSL_CA_PATH": str(tls.ca)}, tmp_path)
    text = body["content"][0]["text"]
    assert body["isError"] is True and 'does not match host name "127.0.0.1"' in text
    assert tls.password not in text


def test_require_needs_no_ca_and_enable_ssl_means_require(tls, tmp_path):
    assert encrypted(call_query(tls.url(host="127.0.0.1"), {"SSL_MODE": "require"}, tmp_path))
    assert encrypted(call_query(tls.url(host="127.0.0.1"), {"ENABLE_SSL": "true"}, tmp_path))


def test_plain_connections_are_refused_by_this_server(tls, tmp_path):
    body = call_query(tls.url(host="127.0.0.1"), {"SSL_MODE": "disable"}, tmp_path)
    assert body["isError"] is True and "no encryption" in body["content"][0]["text"]


def test_sslmode_inside_database_url_keeps_working(tls, tmp_path):
    url = tls.url(query=f"?sslmode=verify-full&sslrootcert={tls.ca}")
    assert encrypted(call_query(url, {}, tmp_path))


def test_a_client_certificate_logs_in_where_the_server_demands_one(tls, tmp_path):
    env = {"SSL_MODE": "verify-full", "SSL_CA_PATH": str(tls.ca), "SSL_CERT_PATH": str(tls.client_cert),
           "SSL_KEY_PATH": str(tls.client_key)}
    assert encrypted(call_query(tls.url(user="certuser"), env, tmp_path))
    without = call_query(tls.url(user="certuser"), {"SSL_MODE": "verify-full", "SSL_CA_PATH": str(tls.ca)}, tmp_path)
    assert without["isError"] is True and "requires a valid client certificate" in without["content"][0]["text"]
