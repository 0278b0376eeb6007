"""Who may call the tools: tokens on every protected route, in both header forms, never leaked."""

from __future__ import annotations

import hmac
import inspect
from typing import Any

import pytest

from pgmcp_http.auth import gate as auth
from pgmcp_http.auth import tokens as tokens_module
from pgmcp_http.auth.tokens import TokenSet
from pgmcp_http.config import ConfigError, load_settings
from tests.helpers import JSON_HEADERS, MODERN, modern_meta, request, sdk_client, start_server

TOKEN_A = "token-a-" + "a1b2c3d4e5f6a7b8"
TOKEN_B = "token-b-" + "0f9e8d7c6b5a4938"
WRONG = TOKEN_A[:-1] + "x"  # right up to the last character


@pytest.fixture(scope="module")
def locked(pg, tmp_path_factory):
    server = start_server(pg.readonly_url, tmp_path_factory.mktemp("auth"), workers=1, threads=2,
                          env={"AUTH_TOKENS": f"{TOKEN_A},{TOKEN_B}"})
    yield server
    server.stop()


def tools_list_message() -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": modern_meta()}}


def call_route(server: Any, route: str, credentials: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    if route == "mcp":
        headers = {**JSON_HEADERS, "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list", **credentials}
        return request("POST", server.url, tools_list_message(), headers)
    if route == "tools/list":
        return request("GET", f"{server.base}/mcp/tools/list", headers=credentials)
    return request("POST", f"{server.base}/mcp/tools/call",
                   {"name": "query", "arguments": {"sql": "SELECT 1 AS one"}},
                   {"Content-Type": "application/json", **credentials})


ROUTES = ["mcp", "tools/list", "tools/call"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("credentials", "error"), [
    ({}, None),
    ({"Authorization": f"Bearer {WRONG}"}, "invalid_token"),
    ({"X-API-Key": WRONG}, "invalid_token"),
    ({"Authorization": f"Basic {TOKEN_A}"}, None),
], ids=["none", "wrong-bearer", "wrong-api-key", "basic-scheme"])
def test_missing_or_wrong_tokens_get_401(locked, route, credentials, error):
    status, headers, body = call_route(locked, route, credentials)
    assert status == 401
    assert headers["www-authenticate"].startswith('Bearer realm="pgmcp-http"')
    assert (f'error="{error}"' in headers["www-authenticate"]) == (error is not None)
    assert body["jsonrpc"] == "2.0" and body["error"]["code"] == auth.UNAUTHORIZED
    assert TOKEN_A not in str(body) and WRONG not in str(body)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("credentials", [
    {"Authorization": f"Bearer {TOKEN_A}"}, {"authorization": f"bearer {TOKEN_B}"}, {"X-API-Key": TOKEN_A},
    {"x-api-key": TOKEN_B}, {"Authorization": f"Bearer {WRONG}", "X-API-Key": TOKEN_B},
], ids=["bearer-a", "bearer-b-lowercase", "api-key-a", "api-key-b-lowercase", "one-of-two-right"])
def test_right_tokens_in_either_header_pass(locked, route, credentials):
    status, _, body = call_route(locked, route, credentials)
    assert status == 200, body
    if route == "tools/call":
        assert body["structuredContent"]["rows"] == [{"one": 1}]


def test_probes_stay_open(locked):
    for path in ("/health", "/livez", "/readyz"):
        assert request("GET", f"{locked.base}{path}")[0] == 200, path


def test_tokens_never_reach_the_log(locked):
    call_route(locked, "tools/call", {"Authorization": f"Bearer {TOKEN_A}"})
    call_route(locked, "tools/call", {"X-API-Key": WRONG})
    text = locked.log_path.read_text()
    assert TOKEN_A not in text and TOKEN_B not in text and WRONG not in text
    assert '"outcome": "unauthorized"' in text or '"outcome":"unauthorized"' in text


def test_the_official_sdk_client_authenticates_with_a_bearer(locked):
    import anyio

    async def main() -> list[str]:
        async with sdk_client(locked.url, MODERN, headers={"Authorization": f"Bearer {TOKEN_B}"}) as client:
            return [tool.name for tool in (await client.list_tools()).tools]

    assert "query" in anyio.run(main)


def test_a_custom_header_name(pg, tmp_path):
    server = start_server(pg.readonly_url, tmp_path, workers=1, threads=1,
                          env={"AUTH_TOKENS": TOKEN_A, "AUTH_HEADER": "X-Federation-Key"})
    try:
        assert call_route(server, "tools/list", {"X-Federation-Key": TOKEN_A})[0] == 200
        assert call_route(server, "tools/list", {"X-API-Key": TOKEN_A})[0] == 401
    finally:
        server.stop()


def test_without_tokens_the_server_warns_and_require_auth_refuses(pg, tmp_path):
    server = start_server(pg.readonly_url, tmp_path, workers=1, threads=1)
    try:
        assert call_route(server, "tools/list", {})[0] == 200
        warned = [line for line in server.log_lines() if "AUTH_TOKENS is not set" in line.get("message", "")]
        assert len(warned) == 1 and warned[0]["level"] == "WARNING"
    finally:
        server.stop()
    with pytest.raises(ConfigError, match="REQUIRE_AUTH=true but no AUTH_TOKENS"):
        load_settings({"DATABASE_URL": "postgresql://u@h/db", "REQUIRE_AUTH": "true"})


def test_token_files_and_bad_tokens(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# federation\n{TOKEN_A}\n\n{TOKEN_B}  # ops\n")
    settings = load_settings({"DATABASE_URL": "postgresql://u@h/db", "AUTH_TOKENS_FILE": str(path)})
    assert settings.auth_tokens == (TOKEN_A, TOKEN_B)
    assert TOKEN_A in settings.secret_values() and TOKEN_A not in repr(settings)
    with pytest.raises(ConfigError, match="AUTH_TOKENS: token 2 must be at least 16"):
        load_settings({"DATABASE_URL": "postgresql://u@h/db", "AUTH_TOKENS": f"{TOKEN_A},short"})
    with pytest.raises(ConfigError, match="AUTH_HEADER='Bad Header'"):
        load_settings({"DATABASE_URL": "postgresql://u@h/db", "AUTH_HEADER": "Bad Header"})


def test_comparison_is_constant_time_over_every_token(monkeypatch):
    """By inspection of the code path: every presented value is compared, with hmac.compare_digest,
    against the digest of every configured token, with no early exit, whether it matches or not."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens_module.hmac, "compare_digest", spy)
    tokens = TokenSet([TOKEN_A, TOKEN_B, "token-c-" + "1234567890abcdef"])
    for presented, expected in ((TOKEN_A, True), (WRONG, False), ("x", False), (TOKEN_B, True)):
        calls.clear()
        assert tokens.matches(presented) is expected
        assert len(calls) == 3
        assert {len(a) for a, _ in calls} == {len(b) for _, b in calls} == {32}  # digests: length leaks nothing
    assert "==" not in inspect.getsource(TokenSet.matches)
