"""federation/: the registration body, what a live server does with exactly what the federation sends,
and self-registration (idempotent, retried with backoff, never in the way of serving).
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from devkit import devdb
from pgmcp_http.config import ConfigError, load_settings
from pgmcp_http.federation import FederationClient, FederationError, Registrar, registration_body
from pgmcp_http.tools import builtin_tools
from tests.deploy_helpers import REPO, json_file
from tests.fake_federation import FakeFederation, go_decodes
from tests.helpers import request, start_server, wait_until

REGISTER = REPO / "federation" / "register.json"
TOKEN = "federation-token-7c1e9a4b2d6f8e03"
OTHER_TOKEN = "operator-token-0a9b8c7d6e5f4a3b"
PLACEHOLDER = "${PGMCP_FEDERATION_TOKEN}"


def _registration(token: str = TOKEN, endpoint: str | None = None) -> dict[str, Any]:
    """register.json as the operator sends it: the placeholder replaced by a token of the server."""
    body = json_file(REGISTER)
    assert body["auth"]["config"]["key"] == PLACEHOLDER
    body["auth"]["config"]["key"] = token
    if endpoint is not None:
        body["endpoint"] = endpoint
    return body


def _auth_headers(body: dict[str, Any]) -> dict[str, str]:
    """The header the federation's AuthenticationManager adds for this registration's auth."""
    auth = body["auth"]
    if auth["type"] == "api_key":
        return {auth["config"].get("header") or "X-API-Key": auth["config"]["key"]}
    if auth["type"] in ("jwt", "oauth2"):
        return {"Authorization": f"Bearer {auth['config']['token']}"}
    assert auth["type"] == "none", f"the federation has no provider for auth type {auth['type']!r}"
    return {}


# --- the file -------------------------------------------------------------------------------------------------------

def test_register_json_is_exactly_what_the_server_itself_sends():
    shipped = json_file(REGISTER)
    built = registration_body(server_id=shipped["id"], endpoint=shipped["endpoint"],
                              tools=[spec.name for spec in builtin_tools(read_only=True)], auth_header="X-API-Key",
                              token=PLACEHOLDER, read_only=True)
    assert shipped == built


def test_register_json_decodes_into_the_federations_struct():
    body = json_file(REGISTER)
    assert go_decodes(body)
    check = body["health_check"]
    assert check["interval"] == 30 * 10**9 and check["timeout"] == 10 * 10**9, "integer nanoseconds"
    assert check["enabled"] is True and check["path"] == "/readyz"
    assert body["protocol"] == "http" and body["auth"]["type"] == "api_key"
    parts = urlsplit(body["endpoint"])
    assert parts.scheme == "http" and parts.path == "" and not body["endpoint"].endswith("/")
    guide_style = copy.deepcopy(body)
    guide_style["health_check"]["interval"] = "30s"
    assert not go_decodes(guide_style), "a duration string must be refused, as Go refuses it"


# --- a live server, called the way the federation calls it ------------------------------------------------------------

@pytest.fixture(scope="module")
def guarded(pg, tmp_path_factory):
    proc = start_server(pg.readonly_url, tmp_path_factory.mktemp("federated"), workers=1, threads=4,
                        env={"AUTH_TOKENS": f"{TOKEN},{OTHER_TOKEN}"})
    try:
        yield proc
    finally:
        proc.stop()


def test_health_check_path_answers_2xx_with_the_federations_auth(guarded):
    body = _registration(endpoint=guarded.base)
    status, _, reply = request("GET", body["endpoint"] + body["health_check"]["path"], headers=_auth_headers(body))
    assert 200 <= status < 300, reply


def test_every_capability_is_a_tool_the_server_lists(guarded):
    body = _registration(endpoint=guarded.base)
    status, _, reply = request("GET", body["endpoint"] + "/mcp/tools/list", headers=_auth_headers(body))
    assert status == 200, reply
    assert set(body["capabilities"]) <= {tool["name"] for tool in reply["tools"]}
    assert request("GET", body["endpoint"] + "/mcp/tools/list")[0] == 401, "tokens are required"


@pytest.mark.parametrize(("name", "arguments"), [
    ("list_tables", {}),
    ("query", {"sql": "SELECT count(*) AS n FROM users WHERE id > $1", "params": [0]}),
    ("describe_table", {"table_name": "orders"}),
])
def test_invoke_path_with_the_federations_body_and_header(guarded, name, arguments):
    """What the federation's HTTPClient.Call sends for tools/call: POST, JSON {"name", "arguments"}, auth header."""
    body = _registration(endpoint=guarded.base)
    status, _, reply = request("POST", body["endpoint"] + "/mcp/tools/call", {"name": name, "arguments": arguments},
                               headers={"Content-Type": "application/json", **_auth_headers(body)})
    assert status == 200, reply
    assert reply["isError"] is False, reply
    assert reply["content"][0]["type"] == "text"
    wrong = {key: "not-the-token-0123456789" for key in _auth_headers(body)}
    status, _, _ = request("POST", body["endpoint"] + "/mcp/tools/call", {"name": name, "arguments": arguments},
                           headers={"Content-Type": "application/json", **wrong})
    assert status == 401


# --- configuration --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("env", "fragment"), [
    ({"FEDERATION_URL": "http://federation:8080"}, "FEDERATION_ENDPOINT is not"),
    ({"FEDERATION_URL": "federation:8080", "FEDERATION_ENDPOINT": "http://me:3401"}, "not an http(s) URL"),
    ({"FEDERATION_URL": "http://f:8080", "FEDERATION_ENDPOINT": "http://me:3401/mcp"}, "without a path"),
    ({"FEDERATION_URL": "http://f:8080", "FEDERATION_ENDPOINT": "http://me:3401", "FEDERATION_SERVER_ID": "a b"},
     "FEDERATION_SERVER_ID"),
])
def test_federation_settings_are_checked(env, fragment):
    with pytest.raises(ConfigError, match=None) as caught:
        load_settings({"DATABASE_URL": "postgresql://u@h/d", **env})
    assert fragment in str(caught.value)


def test_federation_settings_defaults():
    settings = load_settings({"DATABASE_URL": "postgresql://u@h/d", "FEDERATION_URL": "http://f:8080/",
                              "FEDERATION_ENDPOINT": "http://me:3401/"})
    assert (settings.federation_url, settings.federation_endpoint) == ("http://f:8080", "http://me:3401")
    assert settings.federation_server_id == "postgres-mcp-server"


# --- the registrar against a federation that behaves like the real one -----------------------------------------------

@pytest.fixture
def federation():
    fake = FakeFederation()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def _body(**changes: Any) -> dict[str, Any]:
    return {**_registration(endpoint="http://postgres-mcp-server:3401"), **changes}


def test_registers_once_then_leaves_an_identical_record_alone(federation):
    registrar = Registrar(FederationClient(federation.url), _body())
    assert registrar.converge() == "registered"
    assert registrar.converge() == "unchanged"
    assert federation.posts() == [_body()]


def test_a_changed_registration_replaces_the_old_one(federation):
    Registrar(FederationClient(federation.url), _body()).converge()
    changed = _body(capabilities=["query", "list_tables"])
    assert Registrar(FederationClient(federation.url), changed).converge() == "replaced"
    assert federation.servers["postgres-mcp-server"]["capabilities"] == ["query", "list_tables"]
    assert [m for m, _, _ in federation.requests].count("DELETE") == 1


def test_a_refusal_says_why(federation):
    broken = _body(health_check={**_body()["health_check"], "interval": "30s"})
    with pytest.raises(FederationError, match="refused the registration of postgres-mcp-server with 400"):
        Registrar(FederationClient(federation.url), broken).converge()


def test_retries_with_backoff_until_the_federation_is_up():
    port = devdb.free_port()
    registrar = Registrar(FederationClient(f"http://127.0.0.1:{port}", timeout_s=1), _body(),
                          first_delay_s=0.05, max_delay_s=0.4, refresh_s=60)
    stop = threading.Event()
    thread = threading.Thread(target=registrar.run, args=(stop,), daemon=True)
    started = time.monotonic()
    thread.start()
    time.sleep(0.6)  # refused connections meanwhile: 0.05, 0.1, 0.2, 0.4 s apart
    fake = FakeFederation()
    fake.start(port)
    try:
        wait_until(lambda: fake.posts(), timeout=5, what="a registration after the federation came up")
        assert time.monotonic() - started < 2.0, "backoff is capped at max_delay_s"
    finally:
        stop.set()
        thread.join(timeout=5)
        fake.stop()
    assert not thread.is_alive()
    assert fake.posts() == [_body()]


# --- self-registration by a live server ------------------------------------------------------------------------------

def test_live_server_registers_itself_without_waiting_for_the_federation(pg, tmp_path):
    port = devdb.free_port()  # nothing listens here yet: the federation is down
    endpoint = "http://postgres-mcp-server.tas-mcp.svc.cluster.local:3401"
    env = {"AUTH_TOKENS": f"{TOKEN},{OTHER_TOKEN}", "FEDERATION_URL": f"http://127.0.0.1:{port}",
           "FEDERATION_ENDPOINT": endpoint}
    fake = FakeFederation()
    first = start_server(pg.readonly_url, tmp_path, workers=2, env=env)
    try:
        status, _, _ = request("GET", f"{first.base}/livez", timeout=2)
        assert status == 200, "serving does not wait for the federation"
        assert request("POST", f"{first.base}/mcp/tools/call", {"name": "list_tables", "arguments": {}},
                       headers={"Content-Type": "application/json", "X-API-Key": TOKEN})[0] == 200
        fake.start(port)
        wait_until(lambda: fake.posts(), timeout=20, what="the server's registration")
        expected = registration_body(server_id="postgres-mcp-server", endpoint=endpoint,
                                     tools=[spec.name for spec in builtin_tools(read_only=True)],
                                     auth_header="X-API-Key", token=TOKEN, read_only=True)
        assert fake.posts() == [expected], "one worker registers, with the first token"
        assert fake.posts()[0] == _registration(endpoint=endpoint), "the same body as federation/register.json"
    finally:
        first.stop()
    assert _outcomes(first) == ["registered"]
    try:
        seen = len(fake.requests)
        second = start_server(pg.readonly_url, tmp_path, workers=2, env=env)
        try:
            wait_until(lambda: len(fake.requests) > seen, timeout=10, what="the restarted server's check")
            time.sleep(0.5)
        finally:
            second.stop()
    finally:
        fake.stop()
    assert len(fake.posts()) == 1, "a restart finds its record unchanged and does not register again"
    assert {method for method, _, _ in fake.requests[seen:]} == {"GET"}
    assert _outcomes(second) == []


def _outcomes(proc: Any) -> list[str]:
    """What the server's registrar logged at info level (an unchanged record is only a debug line)."""
    return [line["outcome"] for line in proc.log_lines() if line.get("logger") == "pgmcp_http.federation.registrar"
            and "outcome" in line]
