"""Sign-in the MCP way: this server as an OAuth resource server, against a real authorization server.

oidc-provider (tests/oauth_server.py) runs on loopback and issues RFC 9068 access tokens for this
server's resource; the official MCP Python SDK's OAuth clients find it through this server's 401 and
Protected Resource Metadata. Users and services map to PostgreSQL roles through a claim, and the
row-level security of the identity database applies to whoever signed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from devkit import devdb
from tests.deploy_helpers import REPO, json_file
from tests.fake_federation import go_decodes
from tests.helpers import JSON_HEADERS, MODERN, ServerProcess, modern_meta, request, sdk_client, start_server
from tests.identity_fixtures import ANALYST, DB, LOGIN, SUPPORT, TOKENS, IdentityDb, prepare
from tests.oauth_server import (
    AuthorizationServer,
    SdkLogin,
    generate_key,
    private_pem,
    running_authorization_server,
    service_client,
    sign_token,
)

READER, READER_SECRET = "svc-reader", "svc-reader-secret-" + "0123456789abcdef"
FEDERATION, FEDERATION_SECRET = "tas-federation", "tas-federation-secret-" + "0123456789abcdef"
OPAQUE, OPAQUE_SECRET = "opaque-reporter", "opaque-reporter-secret-" + "0123456789abcdef"
INTROSPECTOR, INTROSPECTOR_SECRET = "pgmcp-resource-server", "pgmcp-rs-secret-" + "0123456789abcdef"
CLAIMS = {
    "accounts": {"alice": {"db_role": ANALYST, "region": "eu"}, "bob": {"db_role": ANALYST, "region": "us"}},
    "clients": {READER: {"db_role": SUPPORT, "region": "eu"}, FEDERATION: {"db_role": SUPPORT},
                OPAQUE: {"db_role": SUPPORT}},
}
TOOLS = """\
tools:
  - name: add_note
    description: Adds a fixed note (a write that takes no argument).
    sql: INSERT INTO oauth_notes (body) VALUES ('fixed note')
  - name: add_note_sql
    description: Adds a note whose text is a parameter called sql (a value, not a statement).
    sql: INSERT INTO oauth_notes (body) VALUES ($1)
    parameters:
      - name: sql
        type: string
        description: the note's text
  - name: region_docs
    description: The caller's documents in the caller's own region (taken from the token's region claim).
    sql: SELECT id FROM docs WHERE region = $1 ORDER BY id
    parameters:
      - name: region
        type: string
        description: the region of the caller, from its token
        from_claim: region
"""
NOTES = f"""
CREATE TABLE IF NOT EXISTS oauth_notes (id serial PRIMARY KEY, author text NOT NULL
    DEFAULT current_setting('pgmcp.subject', true), body text NOT NULL);
GRANT SELECT, INSERT ON oauth_notes TO {ANALYST}, {SUPPORT}, {LOGIN};
GRANT USAGE ON SEQUENCE oauth_notes_id_seq TO {ANALYST}, {SUPPORT}, {LOGIN};
"""


@dataclass
class Stack:
    """The authorization server, the identity database and this server, configured for each other."""

    idp: AuthorizationServer
    server: ServerProcess
    idb: IdentityDb

    @property
    def resource(self) -> str:
        return self.server.url

    @property
    def metadata_url(self) -> str:
        return f"{self.server.base}/.well-known/oauth-protected-resource/mcp"

    def token(self, scope: str = "db.schema db.read") -> str:
        return self.idp.client_credentials_token(READER, READER_SECRET, scope=scope,
                                                 resource=self.resource)["access_token"]

    def claims(self, **changes: Any) -> dict[str, Any]:
        """The claims of a token as the provider would issue it for READER, with ``changes`` (None removes)."""
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.idp.issuer, "sub": READER, "aud": self.resource, "client_id": READER,
                                  "scope": "db.schema db.read", "iat": now, "exp": now + 300,
                                  "jti": uuid.uuid4().hex, "db_role": SUPPORT}
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not None}


@pytest.fixture(scope="module")
def stack(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("oauth")
    idb = prepare(pg, workdir)
    devdb.psql(pg.cluster, dbname=DB, sql=NOTES)
    tools_file = workdir / "oauth-tools.yaml"
    tools_file.write_text(TOOLS)
    port = devdb.free_port()  # chosen first: the provider and the server both name the server's URL
    # The federation's client gets tokens for this server by default: its grant names no resource.
    federation = {**service_client(FEDERATION, FEDERATION_SECRET),
                  "pgmcp_test": {"default_resource": f"http://127.0.0.1:{port}/mcp"}}
    clients = [service_client(READER, READER_SECRET), federation, service_client(OPAQUE, OPAQUE_SECRET),
               service_client(INTROSPECTOR, INTROSPECTOR_SECRET)]
    with running_authorization_server(clients=clients, claims=CLAIMS) as idp:
        server = start_server(idb.login_url, workdir, workers=1, threads=4, port=port, env={
            "OAUTH_RESOURCE": f"http://127.0.0.1:{port}/mcp", "OAUTH_ISSUERS": idp.issuer,
            "ROLE_CLAIM": "db_role", "ALLOWED_ROLES": f"{ANALYST},{SUPPORT}", "ROLE_REQUIRED": "true",
            "AUTH_TOKENS_FILE": str(idb.tokens_file), "READ_ONLY": "false", "TOOLS_FILE": str(tools_file),
            "REQUIRE_AUTH": "true", "OAUTH_INTROSPECTION_CLIENT_ID": INTROSPECTOR,
            "OAUTH_INTROSPECTION_CLIENT_SECRET": INTROSPECTOR_SECRET})
        try:
            yield Stack(idp, server, idb)
        finally:
            server.stop()
            # The identity database is the session's: leave it as the other identity tests expect it.
            devdb.psql(pg.cluster, dbname=DB, sql="DROP TABLE IF EXISTS oauth_notes")


class MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: Any = None
        self.client_info: Any = None

    async def get_tokens(self) -> Any:
        return self.tokens

    async def set_tokens(self, tokens: Any) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> Any:
        return self.client_info

    async def set_client_info(self, client_info: Any) -> None:
        self.client_info = client_info


def mcp_call(stack: Stack, method: str, params: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": {**(params or {}), "_meta": modern_meta()}}
    routing = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if method == "tools/call":
        routing["Mcp-Name"] = str(body["params"]["name"])
    return request("POST", stack.server.url, body, {**JSON_HEADERS, **routing, **(headers or {})})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge(headers: dict[str, str]) -> dict[str, str]:
    """The parameters of a ``Bearer`` challenge (quoted values, as this server writes them)."""
    value = headers["www-authenticate"]
    assert value.startswith("Bearer ")
    found: dict[str, str] = {}
    for part in value[len("Bearer "):].split('", '):
        name, _, quoted = part.partition("=")
        found[name] = quoted.strip('"')
    return found


def rows(result: dict[str, Any]) -> list[Any]:
    assert result["isError"] is False, result
    return [row["id"] for row in result["structuredContent"]["rows"]]


# --- metadata and challenges -------------------------------------------------------------------------


def test_metadata_is_served_at_the_path_inserted_and_root_urls_from_the_setting(stack):
    expected = {"resource": stack.resource, "authorization_servers": [stack.idp.issuer],
                "scopes_supported": ["db.schema", "db.read"], "bearer_methods_supported": ["header"],
                "resource_name": "pgmcp-http"}
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        # A Host header naming some internal name changes nothing: the document comes from OAUTH_RESOURCE.
        status, headers, document = request("GET", stack.server.base + path,
                                            headers={"Host": "internal-lb.local:8080", "Origin": "https://x.example"})
        assert status == 200, (path, document)
        assert document == expected
        assert headers["access-control-allow-origin"] == "*" and headers["content-type"] == "application/json"
    status, headers, _ = request("OPTIONS", stack.metadata_url, headers={
        "Origin": "http://localhost:6274", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "mcp-protocol-version"})
    assert status == 204 and "MCP-Protocol-Version" in headers["access-control-allow-headers"]


def test_a_request_without_a_token_gets_401_naming_the_metadata_and_the_baseline_scopes(stack):
    status, headers, body = mcp_call(stack, "tools/list", headers={"Origin": "http://localhost:6274"})
    assert status == 401
    assert headers["www-authenticate"] == (f'Bearer resource_metadata="{stack.metadata_url}", '
                                           'scope="db.schema db.read"')  # no error= without a credential
    assert body["jsonrpc"] == "2.0" and body["id"] is None and body["error"]["code"] == -32001
    assert "WWW-Authenticate" in headers["access-control-expose-headers"]
    assert headers["access-control-allow-origin"] == "http://localhost:6274"
    for route in ("GET /mcp/tools/list", "POST /mcp/tools/call"):
        method, path = route.split()
        status, headers, body = request(method, stack.server.base + path, {"name": "list_tables"} if
                                        method == "POST" else None, {"Content-Type": "application/json"})
        assert status == 401 and challenge(headers)["resource_metadata"] == stack.metadata_url, route
        assert body["error"]["code"] == -32001


def test_a_cors_preflight_needs_no_token(stack):
    status, headers, _ = request("OPTIONS", stack.server.url, headers={
        "Origin": "http://localhost:6274", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,mcp-protocol-version"})
    assert status == 204
    assert headers["access-control-allow-origin"] == "http://localhost:6274"
    assert "Authorization" in headers["access-control-allow-headers"]


# --- the SDK's OAuth clients ---------------------------------------------------------------------------


@pytest.mark.parametrize("revision", ["2025-06-18", "2025-11-25", MODERN])
def test_the_sdk_client_credentials_provider_discovers_signs_in_and_calls_tools(stack, revision):
    from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider

    storage = MemoryStorage()
    provider = ClientCredentialsOAuthProvider(server_url=stack.resource, storage=storage, client_id=READER,
                                              client_secret=READER_SECRET, issuer=stack.idp.issuer)

    async def main() -> tuple[list[str], list[Any]]:
        async with sdk_client(stack.server.url, revision, auth=provider) as client:
            names = [tool.name for tool in (await client.list_tools()).tools]
            result = await client.call_tool("query", {"sql": "SELECT id FROM docs ORDER BY id"})
            return names, rows(result.model_dump(by_alias=True))

    names, ids = anyio.run(main)
    assert {"query", "list_tables", "region_docs"} <= set(names)
    assert ids == [1, 3, 5]  # support13 sees the EU rows: the role came from the token's db_role claim
    assert storage.tokens is not None and storage.tokens.scope == "db.schema db.read"


def test_a_write_needs_db_write_and_the_sdk_steps_up(stack):
    from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider

    marker = "note-" + uuid.uuid4().hex[:8]
    storage = MemoryStorage()
    provider = ClientCredentialsOAuthProvider(server_url=stack.resource, storage=storage, client_id=READER,
                                              client_secret=READER_SECRET, issuer=stack.idp.issuer)
    insert = {"sql": f"INSERT INTO oauth_notes (body) VALUES ('{marker}')"}
    # By hand first: a token with the baseline scopes gets 403 insufficient_scope naming all it needs.
    status, headers, body = mcp_call(stack, "tools/call", {"name": "query", "arguments": insert},
                                     bearer(stack.token()))
    assert status == 403 and body["id"] == 7 and body["error"]["code"] == -32003
    assert challenge(headers) | {"error_description": None} == {
        "resource_metadata": stack.metadata_url, "scope": "db.schema db.read db.write",
        "error": "insufficient_scope", "error_description": None}
    assert "db.write" in challenge(headers)["error_description"]
    # A read with the same token is not a write: it needs no more.
    status, _, body = mcp_call(stack, "tools/call", {"name": "query", "arguments": {"sql": "SELECT 1 AS id"}},
                               bearer(stack.token()))
    assert status == 200 and body["result"]["isError"] is False

    async def main() -> dict[str, Any]:
        async with sdk_client(stack.server.url, MODERN, auth=provider) as client:
            await client.list_tools()
            assert storage.tokens.scope == "db.schema db.read"
            return (await client.call_tool("query", insert)).model_dump(by_alias=True)

    result = anyio.run(main)
    assert result["isError"] is False, result
    assert set(storage.tokens.scope.split()) == {"db.schema", "db.read", "db.write"}  # stepped up
    assert _notes(stack, marker) == [READER]  # written once, as the service client


@pytest.mark.parametrize("route", ["mcp", "rest"])
@pytest.mark.parametrize(("tool", "params"), [
    ("add_note", {"name": "add_note"}),  # no arguments at all: it runs as {} and still writes
    ("add_note", {"name": "add_note", "arguments": None}),
    ("add_note_sql", {"name": "add_note_sql", "arguments": {"sql": "SELECT 1"}}),  # a value, not the statement
])
def test_a_custom_write_tool_needs_db_write_whatever_its_arguments(stack, route, tool, params):
    token = bearer(stack.token())
    if route == "mcp":
        status, headers, body = mcp_call(stack, "tools/call", params, token)
    else:
        status, headers, body = request("POST", f"{stack.server.base}/mcp/tools/call", params,
                                        {"Content-Type": "application/json", **token})
    assert status == 403, body
    assert challenge(headers)["scope"] == "db.schema db.read db.write"


def _notes(stack: Stack, marker: str) -> list[str]:
    status, _, body = mcp_call(stack, "tools/call", {"name": "query", "arguments": {
        "sql": "SELECT author AS id FROM oauth_notes WHERE body = $1", "params": [marker]}}, bearer(stack.token()))
    assert status == 200
    return rows(body["result"])


def test_users_sign_in_with_authorization_code_and_pkce_and_see_their_own_rows(stack):
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import OAuthClientMetadata

    def run_as(username: str) -> tuple[list[Any], list[Any], SdkLogin]:
        browser = SdkLogin(username)
        provider = OAuthClientProvider(
            server_url=stack.resource, storage=MemoryStorage(),
            client_metadata=OAuthClientMetadata(client_name="pgmcp-test", redirect_uris=["http://127.0.0.1:1/cb"],
                                                grant_types=["authorization_code", "refresh_token"],
                                                response_types=["code"]),
            redirect_handler=browser.redirect_handler, callback_handler=browser.callback_handler)

        async def main() -> tuple[list[Any], list[Any]]:
            async with sdk_client(stack.server.url, MODERN, auth=provider) as client:
                own = rows((await client.call_tool("query", {"sql": "SELECT id FROM docs ORDER BY id"}))
                           .model_dump(by_alias=True))
                regional = rows((await client.call_tool("region_docs", {})).model_dump(by_alias=True))
                return own, regional

        own, regional = anyio.run(main)
        return own, regional, browser

    alice_rows, alice_region, browser = run_as("alice")
    assert alice_rows == [1, 2]  # row-level security: analysts see the rows they own
    assert alice_region == [1]  # region_docs took region=eu from alice's token
    first = browser.authorization_urls[0]
    assert "resource=" in first and "code_challenge_method=S256" in first
    bob_rows, bob_region, _ = run_as("bob")
    assert (bob_rows, bob_region) == ([3, 4], [4])
    audit = [json.loads(line) for line in stack.server.stdout_path.read_text().splitlines()
             if '"tool":"region_docs"' in line]
    record = audit[-1]
    assert (record["subject"], record["role"], record["issuer"]) == ("bob", ANALYST, stack.idp.issuer)
    assert record["client_id"] and set(record["scopes"]) >= {"db.schema", "db.read"}


def test_a_claim_bound_parameter_is_neither_shown_nor_accepted_from_the_caller(stack):
    status, _, body = mcp_call(stack, "tools/list", headers=bearer(stack.token()))
    assert status == 200
    tool = next(tool for tool in body["result"]["tools"] if tool["name"] == "region_docs")
    assert "region" not in tool["inputSchema"]["properties"]
    status, _, body = mcp_call(stack, "tools/call", {"name": "region_docs", "arguments": {"region": "us"}},
                               bearer(stack.token()))
    assert body["result"]["isError"] is True and "region" in body["result"]["content"][0]["text"]
    # A static-token caller has no region claim: refused, never run with NULL.
    status, _, body = mcp_call(stack, "tools/call", {"name": "region_docs", "arguments": {}},
                               {"Authorization": f"Bearer {TOKENS['alice']}"})
    assert body["result"]["isError"] is True
    assert "`region` claim" in body["result"]["content"][0]["text"]


def test_static_tokens_keep_working_beside_oauth(stack):
    status, _, body = mcp_call(stack, "tools/call", {"name": "query", "arguments": {
        "sql": "SELECT id FROM docs ORDER BY id"}}, {"Authorization": f"Bearer {TOKENS['alice']}"})
    assert status == 200 and rows(body["result"]) == [1, 2]


def test_catalog_tools_need_only_db_schema_and_reads_need_db_read(stack):
    schema_only = stack.token("db.schema")
    status, _, body = mcp_call(stack, "tools/call", {"name": "list_tables", "arguments": {}}, bearer(schema_only))
    assert status == 200 and body["result"]["isError"] is False
    status, headers, _ = mcp_call(stack, "tools/call", {"name": "query", "arguments": {"sql": "SELECT 1"}},
                                  bearer(schema_only))
    assert status == 403 and challenge(headers)["scope"] == "db.schema db.read"
    status, headers, body = request("POST", f"{stack.server.base}/mcp/tools/call",
                                    {"name": "query", "arguments": {"sql": "SELECT 1"}},
                                    {"Content-Type": "application/json", **bearer(schema_only)})
    assert status == 403 and challenge(headers)["error"] == "insufficient_scope"
    status, _, body = mcp_call(stack, "tools/list", headers=bearer(stack.token("db.read")))
    assert status == 200 and len(body["result"]["tools"]) >= 5  # every tool stays listed, to step up to
    status, _, _ = mcp_call(stack, "resources/list", headers=bearer(stack.token("db.read")))
    assert status == 403


def test_the_federations_oauth2_registration_reaches_the_rest_routes(stack):
    """federation/register-oauth2.json: the federation's oauth2 auth is a client_credentials grant (Go's
    clientcredentials: client_secret_basic, `scope`, no `resource`), so the provider must give that client
    tokens for this server by default; one that does not gets a token without our audience, refused."""
    body = json_file(REPO / "federation" / "register-oauth2.json")
    assert go_decodes(body) and body["auth"]["type"] == "oauth2"
    config = body["auth"]["config"]
    assert set(config) == {"client_id", "client_secret", "token_url", "scopes"}  # what its OAuth2Provider reads

    def federation_call(client: str, secret: str) -> int:
        grant = stack.idp.request("POST", "/token", form={"grant_type": "client_credentials",
                                                          "scope": config["scopes"]},
                                  headers={"Authorization": "Basic " + base64.b64encode(
                                      f"{client}:{secret}".encode()).decode()})
        assert grant.status == 200, grant.body
        status, _, _ = request("POST", f"{stack.server.base}/mcp/tools/call", {"name": "list_tables", "arguments": {}},
                               {"Content-Type": "application/json", **bearer(grant.json()["access_token"])})
        return status

    assert federation_call(FEDERATION, FEDERATION_SECRET) == 200
    assert federation_call(READER, READER_SECRET) == 401  # no default audience: an opaque token, not for us


def test_opaque_tokens_are_introspected_at_the_issuer_and_remembered_briefly(stack):
    issued = stack.idp.client_credentials_token(OPAQUE, OPAQUE_SECRET, scope="db.schema db.read",
                                                resource=stack.resource)["access_token"]
    assert issued.count(".") != 2  # opaque
    asked = stack.idp.stats()["introspection_requests"]
    for _ in range(3):
        status, _, body = mcp_call(stack, "tools/call", {"name": "query", "arguments": {
            "sql": "SELECT id FROM docs ORDER BY id"}}, bearer(issued))
        assert status == 200 and rows(body["result"]) == [1, 3, 5]  # support13, from the introspected claim
    assert stack.idp.stats()["introspection_requests"] == asked + 1  # one worker: asked once, then remembered
    records = [json.loads(line) for line in stack.server.stdout_path.read_text().splitlines() if OPAQUE in line]
    assert records[-1]["subject"] == OPAQUE and records[-1]["issuer"] == stack.idp.issuer
    # Without a resource the provider issues an opaque token with no audience: active, but not for us.
    foreign = stack.idp.request("POST", "/token", form={"grant_type": "client_credentials", "scope": "db.read"},
                                headers={"Authorization": "Basic " + base64.b64encode(
                                    f"{OPAQUE}:{OPAQUE_SECRET}".encode()).decode()}).json()["access_token"]
    status, headers, body = mcp_call(stack, "tools/list", headers=bearer(foreign))
    assert status == 401 and challenge(headers)["error"] == "invalid_token"
    assert "not issued for this server" in body["error"]["message"]
    status, _, _ = mcp_call(stack, "tools/list", headers=bearer("an-opaque-token-the-issuer-never-made"))
    assert status == 401


# --- refusals ---------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A JWT assembled by hand (PyJWT refuses to make these): HS256 with ``secret``, or unsigned."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = b"" if secret is None else hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _public_pem(jwk: dict[str, str]) -> bytes:
    key = serialization.load_pem_private_key(private_pem(jwk), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def raw_signed(jwk: dict[str, str], payload: Any) -> str:
    """A token signed with the provider's key whose payload is ``payload`` as JSON, whatever its shape
    (PyJWT's own encoder refuses to write some of these)."""
    return jwt.api_jws.PyJWS().encode(json.dumps(payload).encode(), private_pem(jwk), algorithm="RS256",
                                      headers={"kid": jwk["kid"], "typ": "at+jwt"})


def refused_tokens(stack: Stack) -> dict[str, str]:
    key = stack.idp.keys[0]
    stranger = generate_key("not-at-the-provider")
    now = int(time.time())
    return {
        "expired": sign_token(key, stack.claims(iat=now - 900, exp=now - 600)),
        "not yet valid": sign_token(key, stack.claims(nbf=now + 600)),
        "wrong issuer": sign_token(key, stack.claims(iss="http://127.0.0.1:9/elsewhere")),
        "no audience": sign_token(key, stack.claims(aud=None)),
        "another resource": sign_token(key, stack.claims(aud="http://127.0.0.1:9/mcp")),
        "alg none": hand_signed({"alg": "none", "typ": "at+jwt", "kid": key["kid"]}, stack.claims(), None),
        "HS256 with the public key": hand_signed({"alg": "HS256", "typ": "at+jwt", "kid": key["kid"]},
                                                 stack.claims(), _public_pem(key)),
        "unknown kid": sign_token(stranger, stack.claims()),
        "ID token": sign_token(key, stack.claims(), typ="JWT"),
        # Signed with the provider's own key and kid: only the header's key source makes it wrong.
        "own jku": jwt.encode(stack.claims(), private_pem(key), algorithm="RS256", headers={
            "kid": key["kid"], "typ": "at+jwt", "jku": f"{stack.idp.issuer}/jwks"}),
        "own jwk": jwt.encode(stack.claims(), private_pem(key), algorithm="RS256", headers={
            "kid": key["kid"], "typ": "at+jwt", "jwk": {k: key[k] for k in ("kty", "n", "e", "kid")}}),
        "non-ASCII kid": sign_token({**key, "kid": "ключ"}, stack.claims()),
        "garbage": "not.a.jwt",
        # Signed properly, shaped wrongly: each must be a 401, never a 500.
        "payload not an object": raw_signed(key, [1, 2]),
        "exp not a number": raw_signed(key, stack.claims(exp="tomorrow")),
        "iss not a string": raw_signed(key, stack.claims(iss=[stack.idp.issuer])),
        "aud a number": raw_signed(key, stack.claims(aud=5)),
        "sub not a string": raw_signed(key, stack.claims(sub={"id": 1})),
        "kid not a string": hand_signed({"alg": "RS256", "typ": "at+jwt", "kid": 7}, stack.claims(), b"x"),
    }


CASES = ["expired", "not yet valid", "wrong issuer", "no audience", "another resource", "alg none",
         "HS256 with the public key", "unknown kid", "ID token", "own jku", "own jwk", "non-ASCII kid", "garbage",
         "payload not an object", "exp not a number", "iss not a string", "aud a number", "sub not a string",
         "kid not a string"]


@pytest.mark.parametrize("case", CASES)
def test_bad_tokens_are_refused_with_invalid_token_and_nothing_runs(stack, case):
    token = refused_tokens(stack)[case]
    marker = f"refused_{uuid.uuid4().hex[:8]}"
    before = stack.server.stdout_path.read_text()
    status, headers, body = mcp_call(stack, "tools/call", {"name": "query", "arguments": {
        "sql": f"SELECT 1 AS {marker}"}}, bearer(token))
    assert status == 401, (case, body)
    found = challenge(headers)
    assert (found["resource_metadata"], found["scope"], found["error"]) == (
        stack.metadata_url, "db.schema db.read", "invalid_token"), case
    assert token not in json.dumps(body) and token not in headers["www-authenticate"]
    assert marker not in stack.server.stdout_path.read_text()[len(before):]  # no audit record: nothing ran
    assert token not in stack.server.log_path.read_text()


def test_an_oauth_token_counts_only_as_a_bearer(stack):
    """RFC 6750 header method only (the metadata says so): the API-key header carries static tokens, not these."""
    status, _, _ = mcp_call(stack, "tools/list", headers={"X-API-Key": stack.token()})
    assert status == 401
    status, _, _ = mcp_call(stack, "tools/list", headers=bearer(stack.token()))
    assert status == 200


def test_a_refused_origin_gets_no_cors_headers(stack):
    for method in ("OPTIONS", "POST"):
        status, headers, _ = request(method, stack.server.url, {} if method == "POST" else None, {
            **JSON_HEADERS, "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert status == 403 and "access-control-allow-origin" not in headers, method


def test_odd_but_valid_claims_are_judged_by_what_they_grant(stack):
    """A scope claim that is not a string grants nothing (403, not 500); a role claim that is not a role name
    is refused at the database (an isError result); the worker stays the same."""
    key, pid = stack.idp.keys[0], stack.server.proc.pid
    status, headers, _ = mcp_call(stack, "tools/call", {"name": "query", "arguments": {"sql": "SELECT 1 AS id"}},
                                  bearer(sign_token(key, stack.claims(scope=5))))
    assert status == 403 and challenge(headers)["error"] == "insufficient_scope"
    status, _, body = mcp_call(stack, "tools/call", {"name": "query", "arguments": {"sql": "SELECT 1 AS id"}},
                               bearer(sign_token(key, stack.claims(db_role={"name": SUPPORT}))))
    assert status == 200 and body["result"]["isError"] is True
    assert "not in ALLOWED_ROLES" in body["result"]["content"][0]["text"]
    assert stack.server.proc.pid == pid and stack.server.proc.poll() is None


def test_the_same_claims_properly_signed_are_accepted(stack):
    """The control of the refusal matrix: only the one thing each case changes makes it fail."""
    status, _, body = mcp_call(stack, "tools/call", {"name": "query", "arguments": {"sql": "SELECT 1 AS id"}},
                               bearer(sign_token(stack.idp.keys[0], stack.claims())))
    assert status == 200 and rows(body["result"]) == [1]


def test_the_server_refuses_to_start_on_a_bad_resource_or_tool_scope(pg: Any, tmp_path: Path):
    from tests.helpers import start_up_failure

    for value, fragment in [("https://DB.example.com/mcp", "lower case"), ("https://db.example.com/mcp/", "slash"),
                            ("http://db.example.com/mcp", "https"), ("https://db.example.com/mcp?x=1", "query")]:
        lines = start_up_failure(pg.readonly_url, tmp_path, {"OAUTH_RESOURCE": value,
                                                             "OAUTH_ISSUERS": "https://login.example.com"})
        assert any("OAUTH_RESOURCE" in line and fragment in line for line in lines), (value, lines[-3:])
    # Checked once the tools are known (the app is built), with the same one line.
    lines = start_up_failure(pg.readonly_url, tmp_path, {"OAUTH_RESOURCE": "https://db.example.com/mcp",
                                                         "OAUTH_ISSUERS": "https://login.example.com",
                                                         "OAUTH_TOOL_SCOPES": "qurey=db.read"})
    assert any("configuration error: OAUTH_TOOL_SCOPES: 'qurey' is not a tool of this server" in line
               for line in lines), lines[-3:]
