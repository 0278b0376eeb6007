"""The identity provider's signing keys change while the server runs: rotation, removal, an outage.

Each server keeps each issuer's key set for OAUTH_JWKS_CACHE seconds (2 here, so the test need not
wait ten minutes) and refetches early when a token names a key it does not hold. Nothing restarts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pgmcp_http import devdb
from tests.helpers import JSON_HEADERS, MODERN, ServerProcess, modern_meta, request, start_server, wait_until
from tests.oauth_server import (
    AuthorizationServer,
    generate_key,
    running_authorization_server,
    service_client,
    sign_token,
)

CACHE_S = 2
SECRET = "svc-secret-" + "0123456789abcdef"


def claims(idp: AuthorizationServer, resource: str) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": idp.issuer, "sub": "svc", "aud": resource, "client_id": "svc", "scope": "db.schema db.read",
            "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}


def call(server: ServerProcess, token: str) -> tuple[int, dict[str, str], Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "query", "arguments": {"sql": "SELECT 1 AS one"}, "_meta": modern_meta()}}
    return request("POST", server.url, body, {**JSON_HEADERS, "MCP-Protocol-Version": MODERN,
                                              "Mcp-Method": "tools/call", "Mcp-Name": "query",
                                              "Authorization": f"Bearer {token}"})


def status_with(server: ServerProcess, idp: AuthorizationServer, key: dict[str, str]) -> int:
    return call(server, sign_token(key, claims(idp, server.url)))[0]


@pytest.fixture
def pair(pg: Any, tmp_path: Any) -> Iterator[tuple[AuthorizationServer, ServerProcess, list[dict[str, str]]]]:
    keys = [generate_key("k1"), generate_key("k2"), generate_key("k3")]
    with running_authorization_server(keys=[keys[0]], clients=[service_client("svc", SECRET)]) as idp:
        port = devdb.free_port()
        server = start_server(pg.readonly_url, tmp_path, workers=1, threads=2, port=port, env={
            "OAUTH_RESOURCE": f"http://127.0.0.1:{port}/mcp", "OAUTH_ISSUERS": idp.issuer,
            "OAUTH_JWKS_CACHE": str(CACHE_S)})
        try:
            yield idp, server, keys
        finally:
            server.stop()


def test_a_rotated_key_is_picked_up_and_a_removed_one_refused_without_a_restart(pair):
    idp, server, (k1, k2, _) = pair
    pids = server.proc.pid
    assert status_with(server, idp, k1) == 200
    idp.rotate([k2, k1])  # the provider publishes k2 and signs with it
    wait_until(lambda: status_with(server, idp, k2) == 200, timeout=CACHE_S * 10)
    issued = idp.client_credentials_token("svc", SECRET, scope="db.schema db.read", resource=server.url)
    assert call(server, issued["access_token"])[0] == 200  # what the provider now issues, signed with k2
    assert status_with(server, idp, k1) == 200  # both published: both accepted
    idp.rotate([k2])  # k1 removed
    wait_until(lambda: status_with(server, idp, k1) == 401, timeout=CACHE_S * 10)
    assert status_with(server, idp, k2) == 200
    assert server.proc.pid == pids and server.proc.poll() is None


def test_an_outage_of_the_key_endpoint_keeps_the_last_good_keys(pair):
    idp, server, (k1, _, k3) = pair
    assert status_with(server, idp, k1) == 200
    idp.jwks_down(True)
    fetches = idp.stats()["jwks_requests"]
    deadline = time.monotonic() + CACHE_S * 3
    while time.monotonic() < deadline:  # well past the cache's life: refetches fail, the cached key still works
        assert status_with(server, idp, k1) == 200
        time.sleep(0.2)
    assert idp.stats()["jwks_requests"] > fetches  # it did try again, and kept the keys it had
    assert status_with(server, idp, k3) == 401  # an unknown key is still refused (not 503: keys are known)
    idp.jwks_down(False)
    assert status_with(server, idp, k1) == 200


def test_without_any_key_the_answer_is_503_not_401(pg, tmp_path):
    with running_authorization_server() as idp:
        idp.jwks_down(True)
        port = devdb.free_port()
        server = start_server(pg.readonly_url, tmp_path, workers=1, threads=2, port=port, env={
            "OAUTH_RESOURCE": f"http://127.0.0.1:{port}/mcp", "OAUTH_ISSUERS": idp.issuer,
            "OAUTH_JWKS_CACHE": str(CACHE_S)})
        try:
            status, headers, body = call(server, sign_token(idp.keys[0], claims(idp, server.url)))
            assert status == 503 and headers["retry-after"] == "5" and "www-authenticate" not in headers
            assert "signing keys" in body["error"]["message"]
            idp.jwks_down(False)
            wait_until(lambda: call(server, sign_token(idp.keys[0], claims(idp, server.url)))[0] == 200,
                       timeout=CACHE_S * 10)
        finally:
            server.stop()
