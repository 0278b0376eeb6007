"""The identity provider's signing keys change while the server runs: rotation, removal, an outage.

Each worker keeps each issuer's key set for OAUTH_JWKS_CACHE seconds (10 here, the shortest allowed,
so the tests need not wait ten minutes) and refetches early, at most once per cooldown (a quarter of
that), when a token names a key it does not hold. Nothing restarts. The in-process tests at the end
check the memo of verified tokens and the header rules against the same real provider.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from devkit import devdb
from pgmcp_http.auth.access_tokens import AccessTokens, TokenRefused
from pgmcp_http.auth.claims import LEEWAY_S
from pgmcp_http.auth.fetch import JsonFetcher
from pgmcp_http.auth.keysets import IssuerKeys
from pgmcp_http.auth.tokens import credential_digest
from pgmcp_http.config import load_settings
from pgmcp_http.identity import RolePolicy
from tests.helpers import JSON_HEADERS, MODERN, ServerProcess, modern_meta, request, start_server, wait_until
from tests.oauth_server import (
    AuthorizationServer,
    generate_key,
    private_pem,
    running_authorization_server,
    service_client,
    sign_token,
)

CACHE_S = 10
COOLDOWN_S = CACHE_S / 4
SECRET = "svc-secret-" + "0123456789abcdef"


def claims(idp: AuthorizationServer, resource: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": idp.issuer, "sub": "svc", "aud": resource, "client_id": "svc", "scope": "db.schema db.read",
            "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex, **changes}


def call(server: ServerProcess, token: str) -> tuple[int, dict[str, str], Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "query", "arguments": {"sql": "SELECT 1 AS one"}, "_meta": modern_meta()}}
    return request("POST", server.url, body, {**JSON_HEADERS, "MCP-Protocol-Version": MODERN,
                                              "Mcp-Method": "tools/call", "Mcp-Name": "query",
                                              "Authorization": f"Bearer {token}"})


def status_with(server: ServerProcess, idp: AuthorizationServer, key: dict[str, str]) -> int:
    return call(server, sign_token(key, claims(idp, server.url)))[0]


def oauth_server(pg: Any, tmp_path: Any, idp: AuthorizationServer) -> ServerProcess:
    port = devdb.free_port()
    return start_server(pg.readonly_url, tmp_path, workers=1, threads=2, port=port, env={
        "OAUTH_RESOURCE": f"http://127.0.0.1:{port}/mcp", "OAUTH_ISSUERS": idp.issuer,
        "OAUTH_JWKS_CACHE": str(CACHE_S)})


@pytest.fixture
def pair(pg: Any, tmp_path: Any) -> Iterator[tuple[AuthorizationServer, ServerProcess, list[dict[str, str]]]]:
    keys = [generate_key("k1"), generate_key("k2"), generate_key("k3")]
    with running_authorization_server(keys=[keys[0]], clients=[service_client("svc", SECRET)]) as idp:
        server = oauth_server(pg, tmp_path, idp)
        try:
            yield idp, server, keys
        finally:
            server.stop()


def test_a_rotated_key_is_picked_up_early_and_a_removed_one_refused_without_a_restart(pair):
    idp, server, (k1, k2, k3) = pair
    pid = server.proc.pid
    kept = sign_token(k1, claims(idp, server.url))  # one token string, used again after k1 is removed
    assert call(server, kept)[0] == 200
    fetched = idp.stats()["jwks_requests"]
    fetched_at = time.monotonic()
    idp.rotate([k2, k1])  # the provider publishes k2 and signs with it
    wait_until(lambda: status_with(server, idp, k2) == 200, timeout=CACHE_S * 0.8)  # before the cache expires
    assert time.monotonic() - fetched_at < CACHE_S  # so it was the unknown kid that made the worker refetch
    assert idp.stats()["jwks_requests"] == fetched + 1
    issued = idp.client_credentials_token("svc", SECRET, scope="db.schema db.read", resource=server.url)
    assert call(server, issued["access_token"])[0] == 200  # what the provider now issues, signed with k2
    assert call(server, kept)[0] == 200  # both published: both accepted
    # A burst of tokens naming a key nobody published: refused, and at most one fetch per cooldown.
    before, started = idp.stats()["jwks_requests"], time.monotonic()
    for _ in range(20):
        assert status_with(server, idp, k3) == 401
    allowed = 1 + int((time.monotonic() - started) / COOLDOWN_S)
    assert idp.stats()["jwks_requests"] - before <= allowed
    idp.rotate([k2])  # k1 removed
    wait_until(lambda: call(server, kept)[0] == 401, timeout=CACHE_S * 3)  # the remembered token too
    assert status_with(server, idp, k2) == 200
    assert server.proc.pid == pid and server.proc.poll() is None


def test_an_outage_of_the_key_endpoint_keeps_the_last_good_keys(pair):
    idp, server, (k1, _, k3) = pair
    assert status_with(server, idp, k1) == 200
    idp.jwks_down(True)
    fetches = idp.stats()["jwks_requests"]
    deadline = time.monotonic() + CACHE_S + 2 * COOLDOWN_S + 1
    while time.monotonic() < deadline:  # past the cache's life: refetches fail, the cached key still works
        assert status_with(server, idp, k1) == 200
        time.sleep(0.2)
    assert idp.stats()["jwks_requests"] > fetches  # it did try again, and kept the keys it had
    assert status_with(server, idp, k3) == 401  # an unknown key is still refused (not 503: keys are known)
    idp.jwks_down(False)
    assert status_with(server, idp, k1) == 200


def test_without_any_key_the_answer_is_503_not_401(pg, tmp_path):
    with running_authorization_server() as idp:
        idp.jwks_down(True)
        server = oauth_server(pg, tmp_path, idp)
        try:
            status, headers, body = call(server, sign_token(idp.keys[0], claims(idp, server.url)))
            assert status == 503 and headers["retry-after"] == "5" and "www-authenticate" not in headers
            assert "signing keys" in body["error"]["message"] and body["error"]["code"] == -32004
            # The answer says the log has the reason: it does, once per attempt, not once per call.
            wait_until(lambda: f"no signing keys of {idp.issuer} yet" in server.log_path.read_text())
            assert f"{idp.issuer}/jwks answered HTTP 503" in server.log_path.read_text()
            idp.jwks_down(False)
            wait_until(lambda: call(server, sign_token(idp.keys[0], claims(idp, server.url)))[0] == 200,
                       timeout=CACHE_S * 2)
        finally:
            server.stop()


# --- in process, against the same provider ----------------------------------------------------------


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def tokens_of(idp: AuthorizationServer, clock: Clock, **env: str) -> AccessTokens:
    settings = load_settings({"DATABASE_URL": "postgresql://u@localhost/db", "OAUTH_RESOURCE": RESOURCE,
                              "OAUTH_ISSUERS": idp.issuer, **env}).oauth
    assert settings is not None
    keys = IssuerKeys(idp.issuer, JsonFetcher(5.0), ttl_s=600, clock=lambda: clock.now)
    return AccessTokens(settings, {idp.issuer: keys}, RolePolicy(), clock=clock)


RESOURCE = "http://127.0.0.1:9/mcp"


def test_the_memo_of_verified_tokens_ends_at_exp_and_at_a_new_key_set():
    with running_authorization_server() as idp:
        clock = Clock()
        tokens = tokens_of(idp, clock)
        token = sign_token(idp.keys[0], claims(idp, RESOURCE, exp=int(clock.now) + 60))
        caller = tokens.caller(token)
        assert caller.subject == "svc" and tokens.remembered(credential_digest(token)) is caller
        clock.now += 60 + LEEWAY_S + 1
        assert tokens.remembered(credential_digest(token)) is None  # past exp and leeway: verified again, refused
        fresh = sign_token(idp.keys[0], claims(idp, RESOURCE, exp=int(time.time()) + 3600))
        clock.now = time.time()
        tokens.caller(fresh)
        assert tokens.remembered(credential_digest(fresh)) is not None
        clock.now += 601  # the key set is stale: the next look refetches it, a new generation
        assert tokens.remembered(credential_digest(fresh)) is None
        assert idp.stats()["jwks_requests"] == 2


def test_the_header_is_judged_before_any_key_is_fetched():
    with running_authorization_server() as idp:
        tokens = tokens_of(idp, Clock(), OAUTH_ALGORITHMS="ES256")
        with pytest.raises(TokenRefused, match="signature algorithm is not one of ES256"):
            tokens.caller(sign_token(idp.keys[0], claims(idp, RESOURCE)))
        stranger = generate_key("stranger")
        for header in ({"jku": f"{idp.issuer}/jwks"}, {"x5u": f"{idp.issuer}/cert"}):
            token = jwt.encode(claims(idp, RESOURCE), private_pem(stranger), algorithm="RS256",
                               headers={"kid": "k", "typ": "at+jwt", **header})
            with pytest.raises(TokenRefused, match="names its own key"):
                tokens_of(idp, Clock()).caller(token)
        assert idp.stats()["jwks_requests"] == 0
