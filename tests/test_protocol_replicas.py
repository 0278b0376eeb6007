"""Signed sessions: an id issued by one server process is accepted by another with the same secret."""

from __future__ import annotations

from tests.helpers import initialize, session_rpc, start_server


def test_session_survives_a_hop_to_another_replica(pg, tmp_path):
    first = start_server(pg.readonly_url, tmp_path, workers=1, threads=2)
    second = start_server(pg.readonly_url, tmp_path, workers=1, threads=2)
    stranger = start_server(pg.readonly_url, tmp_path, workers=1, threads=2,
                            env={"SESSION_SECRET": "a-different-secret-a-different-secret!"})
    try:
        session, version = initialize(first.url, "2025-06-18")
        for replica in (first, second):
            reply = session_rpc(replica.url, session, version, "tools/call",
                                {"name": "query", "arguments": {"sql": "SELECT 40 + 2 AS answer"}})
            assert reply.status == 200
            assert reply.body["result"]["structuredContent"]["rows"] == [{"answer": 42}]
        refused = session_rpc(stranger.url, session, version, "tools/list")
        assert refused.status == 404
    finally:
        for server in (first, second, stranger):
            server.stop()


def test_without_a_secret_each_container_makes_its_own(pg, tmp_path):
    first = start_server(pg.readonly_url, tmp_path, workers=2, threads=1, env={"SESSION_SECRET": ""})
    second = start_server(pg.readonly_url, tmp_path, workers=1, threads=1, env={"SESSION_SECRET": ""})
    try:
        session, version = initialize(first.url)
        for _ in range(6):  # fresh connections: both workers of the first container accept it
            assert session_rpc(first.url, session, version, "tools/list").status == 200
        assert session_rpc(second.url, session, version, "tools/list").status == 404
        assert any("SESSION_SECRET is not set" in line.get("message", "") for line in first.log_lines())
    finally:
        first.stop()
        second.stop()
