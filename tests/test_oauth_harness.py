"""The OAuth test harness (tests/oauth_server.py) against the real oidc-provider: tokens, keys, login.

These pin what the resource-server tests rely on: RFC 9068 JWTs for a loopback resource with exactly
the asked-for subset of scopes, extra claims, key rotation, a failing /jwks, the code flow with PKCE
driven by ``login``, and the MCP SDK's own OAuth client logging in and stepping up through ``SdkLogin``.
One provider serves the module; tests that change it (rotation, /jwks down) put it back.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import jwt
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from tests.oauth_server import (
    ACCESS_TOKEN_TTL,
    AuthorizationServer,
    HttpError,
    SdkLogin,
    generate_key,
    login,
    pkce_pair,
    running_authorization_server,
    service_client,
    sign_token,
)

RESOURCE = "http://127.0.0.1:1234/mcp"
CALLBACK = "http://127.0.0.1:9999/callback"
SECRET = "svc-secret-0123456789abcdef"
BASELINE = "db.schema db.read"
CLAIMS = {"accounts": {"alice": {"tenant_id": "acme", "db_role": "app_alice"}},
          "clients": {"svc": {"tenant_id": "acme", "db_role": "app_svc"}}}
REQUIRED = ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"]


@pytest.fixture(scope="module")
def oauth_as() -> Iterator[AuthorizationServer]:
    with running_authorization_server([generate_key("as-key-1")], [service_client("svc", SECRET)], CLAIMS) as server:
        yield server
        assert "server_error" not in server.log, server.log


def verified(server: AuthorizationServer, token: str, resource: str = RESOURCE) -> dict[str, Any]:
    """Claims of ``token`` checked the way a resource server must: keys from the discovered jwks_uri."""
    jwks = jwt.PyJWKClient(server.metadata()["jwks_uri"], cache_keys=False, cache_jwk_set=False)
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(token, key, algorithms=["RS256"], audience=resource, issuer=server.issuer,
                      options={"require": REQUIRED})


def service_token(server: AuthorizationServer, scope: str = BASELINE) -> str:
    return server.client_credentials_token("svc", SECRET, scope=scope, resource=RESOURCE)["access_token"]


def test_client_credentials_token_is_a_jwt_for_the_resource_with_the_subset_asked(oauth_as: AuthorizationServer):
    reply = oauth_as.client_credentials_token("svc", SECRET, scope=BASELINE, resource=RESOURCE)
    assert reply["scope"] == BASELINE and reply["token_type"] == "Bearer"
    header = jwt.get_unverified_header(reply["access_token"])
    assert header == {"alg": "RS256", "typ": "at+jwt", "kid": "as-key-1"}
    claims = verified(oauth_as, reply["access_token"])
    assert claims["aud"] == RESOURCE and claims["scope"] == BASELINE
    assert claims["sub"] == claims["client_id"] == "svc"
    assert claims["exp"] - claims["iat"] == ACCESS_TOKEN_TTL
    assert claims["tenant_id"] == "acme" and claims["db_role"] == "app_svc"


def test_unknown_scope_is_dropped_and_foreign_resource_refused(oauth_as: AuthorizationServer):
    with pytest.raises(HttpError) as refused:
        oauth_as.client_credentials_token("svc", SECRET, scope=BASELINE, resource="https://db.example.com/mcp")
    assert refused.value.status == 400 and json.loads(refused.value.body)["error"] == "invalid_target"
    claims = jwt.decode(service_token(oauth_as, "db.read db.admin"), options={"verify_signature": False})
    assert claims["scope"] == "db.read"


def test_rotation_signs_with_the_new_key_and_publishes_both(oauth_as: AuthorizationServer):
    before, original = service_token(oauth_as), oauth_as.keys[0]
    oauth_as.rotate([generate_key("as-key-2"), original])
    try:
        after = service_token(oauth_as)
        assert jwt.get_unverified_header(after)["kid"] == "as-key-2"
        assert {key["kid"] for key in oauth_as.jwks()["keys"]} == {"as-key-1", "as-key-2"}
        assert all("d" not in key for key in oauth_as.jwks()["keys"])
        assert verified(oauth_as, before)["sub"] == verified(oauth_as, after)["sub"] == "svc"
    finally:
        oauth_as.rotate([original])
    assert jwt.get_unverified_header(service_token(oauth_as))["kid"] == "as-key-1"


def test_jwks_down_answers_503_and_stats_count(oauth_as: AuthorizationServer):
    start = oauth_as.stats()
    oauth_as.jwks_down(True)
    try:
        assert oauth_as.request("GET", "/jwks").status == 503
    finally:
        oauth_as.jwks_down(False)
    assert oauth_as.request("GET", "/jwks").status == 200
    oauth_as.metadata()
    service_token(oauth_as)
    now = oauth_as.stats()
    assert now["jwks_requests"] - start["jwks_requests"] == 2
    assert now["discovery_requests"] - start["discovery_requests"] == 1
    assert now["token_requests"] - start["token_requests"] == 1


def code_flow(server: AuthorizationServer, client: dict[str, Any], scope: str) -> dict[str, Any]:
    """Authorize with PKCE S256 + resource, log alice in, exchange the code: the token response."""
    verifier, challenge = pkce_pair()
    url = server.authorization_url(client["client_id"], CALLBACK, scope=scope, resource=RESOURCE,
                                   code_challenge=challenge, state="state-1")
    location = login(url, "alice")
    assert location.startswith(CALLBACK + "?")
    query = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
    assert query["state"] == "state-1" and query["iss"] == server.issuer
    return server.exchange_code(client, query["code"], redirect_uri=CALLBACK, code_verifier=verifier,
                                resource=RESOURCE)


def test_authorization_code_flow_logs_alice_in_and_steps_up(oauth_as: AuthorizationServer):
    client = oauth_as.register_client([CALLBACK], scope=BASELINE)
    first = verified(oauth_as, code_flow(oauth_as, client, BASELINE)["access_token"])
    assert first["sub"] == "alice" and first["aud"] == RESOURCE and first["scope"] == BASELINE
    assert first["client_id"] == client["client_id"] and first["db_role"] == "app_alice"
    wider = verified(oauth_as, code_flow(oauth_as, client, BASELINE + " db.write")["access_token"])
    assert wider["sub"] == "alice" and wider["scope"] == BASELINE + " db.write"


class MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class StubResource(httpx2.AsyncBaseTransport):
    """A minimal MCP resource server at RESOURCE, answered in-process: PRM naming the provider, 401 with
    the baseline scope, GET needs db.read, POST needs db.write (403 insufficient_scope). Requests to any
    other origin (the provider) go over the network."""

    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server
        self.network = httpx2.AsyncHTTPTransport()
        self.scopes_seen: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.port != 1234:
            return await self.network.handle_async_request(request)
        if request.url.path.startswith("/.well-known/oauth-protected-resource"):
            return httpx2.Response(200, json={"resource": RESOURCE, "authorization_servers": [self.server.issuer],
                                              "scopes_supported": BASELINE.split()})
        return await anyio.to_thread.run_sync(self.answer, request)

    def answer(self, request: httpx2.Request) -> httpx2.Response:
        metadata = 'resource_metadata="http://127.0.0.1:1234/.well-known/oauth-protected-resource/mcp"'
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not token:
            return httpx2.Response(401, headers={"WWW-Authenticate": f'Bearer {metadata}, scope="{BASELINE}"'})
        scopes = verified(self.server, token)["scope"]
        self.scopes_seen.append(scopes)
        if request.method == "POST" and "db.write" not in scopes.split():
            challenge = f'Bearer error="insufficient_scope", scope="{BASELINE} db.write", {metadata}'
            return httpx2.Response(403, headers={"WWW-Authenticate": challenge})
        return httpx2.Response(200, json={"ok": True})


def test_mcp_sdk_oauth_client_logs_in_and_steps_up(oauth_as: AuthorizationServer):
    browser = SdkLogin("alice")
    storage = MemoryStorage()
    auth = OAuthClientProvider(RESOURCE, OAuthClientMetadata(redirect_uris=[CALLBACK], client_name="harness"),
                               storage, redirect_handler=browser.redirect_handler,
                               callback_handler=browser.callback_handler)
    stub = StubResource(oauth_as)

    async def scenario() -> tuple[int, int]:
        async with httpx2.AsyncClient(auth=auth, transport=stub, timeout=20) as client:
            return (await client.get(RESOURCE)).status_code, (await client.post(RESOURCE)).status_code

    assert anyio.run(scenario) == (200, 200)
    assert stub.scopes_seen == [BASELINE, BASELINE, BASELINE + " db.write"]
    asked = [parse_qs(urlsplit(url).query) for url in browser.authorization_urls]
    assert [query["resource"] for query in asked] == [[RESOURCE], [RESOURCE]]
    assert set(asked[1]["scope"][0].split()) == {*BASELINE.split(), "offline_access", "db.write"}
    assert storage.tokens is not None
    payload = storage.tokens.access_token.split(".")[1]
    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"] == "alice"


def test_tokens_minted_with_the_provider_key_verify_like_its_own(oauth_as: AuthorizationServer):
    now = int(time.time())
    claims = {"iss": oauth_as.issuer, "sub": "bob", "aud": RESOURCE, "exp": now + 60, "iat": now, "jti": "j1",
              "client_id": "local", "scope": BASELINE}
    assert verified(oauth_as, sign_token(oauth_as.keys[0], claims))["sub"] == "bob"


def test_a_failed_start_reports_node_stderr():
    server = AuthorizationServer()
    with pytest.raises(RuntimeError, match=r"failed to start \(exited 1\)") as failed:
        server.start([{"kty": "RSA", "kid": "broken"}])
    assert "jwks.keys[0]" in str(failed.value)
