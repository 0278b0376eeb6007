"""Real MCP clients sign in to this server as an OAuth resource server: the MCP Inspector's CLI and mcp-remote.

oidc-provider (tests/oauth_server.py) is the authorization server; this server (OAUTH_RESOURCE,
OAUTH_ISSUERS) answers a request without a token with 401 and a ``resource_metadata`` challenge. Each
client is given nothing but the server's URL: it must fetch the Protected Resource Metadata (RFC 9728)
and the authorization server's metadata (RFC 8414), register itself (RFC 7591), send the user to the
authorization endpoint with PKCE and an RFC 8707 resource, take the code at its loopback callback, and
call tools with the token it gets.

The browser: both clients open the authorization URL with the npm package ``open``, which runs
xdg-open, which on a machine without a desktop runs ``$BROWSER``. Ours only writes the URL down; the
test then logs ``alice`` in through oidc-provider's login and consent pages (``login``) and delivers
the redirect to the client's callback port itself, as the browser would.

The conformance suite pinned in tests/node/package.json has no server-side auth scenario: all its
``auth/*`` scenarios test a client against the suite's own mock servers (the last test keeps that true).
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import shlex
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from devkit import devdb
from tests.helpers import ServerProcess, request, start_server, stop_process, wait_until
from tests.nodejs import NODE_DIR, NodeTools, node_tools
from tests.oauth_server import AuthorizationServer, login, running_authorization_server, service_client

BUILT_IN_TOOLS = ["query", "describe_table", "list_tables", "analyze_query", "database_health"]
BASELINE_SCOPES = {"db.schema", "db.read"}
SERVICE, SERVICE_SECRET = "svc-interop", "svc-interop-secret-" + "0123456789abcdef"
CLIENT_TIMEOUT = 180.0  # one client run, sign-in included: Node starts slowly on a loaded 2-core machine
# What makes xdg-open think a desktop is there (it would then ask the desktop, not $BROWSER, to open the URL).
DESKTOP_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY", "XDG_CURRENT_DESKTOP", "XDG_SESSION_DESKTOP", "DESKTOP_SESSION",
                     "DESKTOP", "KDE_FULL_SESSION", "GNOME_DESKTOP_SESSION_ID", "MATE_DESKTOP_SESSION_ID",
                     "LXQT_SESSION_CONFIG", "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR")


@dataclass
class Stack:
    idp: AuthorizationServer
    server: ServerProcess

    @property
    def metadata_url(self) -> str:
        return f"{self.server.base}/.well-known/oauth-protected-resource/mcp"

    def service_token(self) -> str:
        return self.idp.client_credentials_token(SERVICE, SERVICE_SECRET, scope="db.schema db.read",
                                                 resource=self.server.url)["access_token"]

    def metadata_fetches(self) -> int:
        return sum(1 for line in self.server.log_lines()
                   if line.get("path") == "/.well-known/oauth-protected-resource/mcp" and line.get("status") == 200)

    def refusals(self) -> int:
        return sum(1 for line in self.server.log_lines() if line.get("path") == "/mcp" and line.get("status") == 401)

    def audit(self, marker: str) -> dict[str, Any]:
        """The audit record of the one tool call whose SQL carries ``marker``."""
        stdout_path = self.server.stdout_path
        assert stdout_path is not None

        def records() -> list[dict[str, Any]]:
            return [json.loads(line) for line in stdout_path.read_text().splitlines()
                    if marker in line and line.startswith("{")]

        found = wait_until(records, what=f"the audit record of {marker}")
        assert len(found) == 1, found
        record: dict[str, Any] = found[0]
        return record


@pytest.fixture(scope="module")
def stack(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("interop-oauth")
    port = devdb.free_port()
    with running_authorization_server(clients=[service_client(SERVICE, SERVICE_SECRET)]) as idp:
        server = start_server(pg.readonly_url, workdir, workers=1, threads=4, port=port, env={
            "OAUTH_RESOURCE": f"http://127.0.0.1:{port}/mcp", "OAUTH_ISSUERS": idp.issuer})
        try:
            yield Stack(idp, server)
        finally:
            server.stop()


# --- the machinery: a headless browser, and the two clients as child processes ---------------------------------


def headless(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name not in DESKTOP_VARIABLES}


class Browser:
    """``$BROWSER`` for the clients: a script that appends each URL it is asked to open to a file."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.record = directory / "opened-urls.txt"
        self.script = directory / "browser"
        self.script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$1\" >> {shlex.quote(str(self.record))}\n")
        self.script.chmod(0o755)

    def env(self) -> dict[str, str]:
        return {"BROWSER": str(self.script)}

    def opened(self) -> list[str]:
        return self.record.read_text().splitlines() if self.record.exists() else []

    def wait_for_url(self, client: Child) -> str:
        """The first URL opened; fails at once, with the client's stderr, if the client exits first."""

        def opened() -> str | None:
            urls = self.opened()
            if urls:
                return urls[0]
            if client.proc.poll() is not None:
                raise AssertionError(f"the client exited {client.proc.returncode} without opening a browser:\n"
                                     f"{client.stderr()[-4000:]}")
            return None

        url: str = wait_until(opened, timeout=CLIENT_TIMEOUT, interval=0.2, what="the client opening a browser")
        return url


def sign_in(url: str, username: str) -> str:
    """What the user does in the browser: log in, consent, and follow the redirect to the client's callback
    (which answers 200 once it has the code). Returns that redirect."""
    location = login(url, username)
    status, _, body = request("GET", location, timeout=CLIENT_TIMEOUT)
    assert status == 200, (location, body)
    return location


def authorization_request(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def shown_url(stderr: str, prompt: str) -> str:
    """The URL a client printed after ``prompt`` for a user to open by hand."""
    match = re.search(re.escape(prompt) + r"\s*(http\S+)", stderr)
    assert match, stderr
    return match[1]


class Child:
    """A Node client started by a test; stderr goes to a file, ``stop`` ends it (and is safe to call twice)."""

    def __init__(self, args: list[str], env: dict[str, str], stderr_path: Path, *, stdio: bool) -> None:
        self.stderr_path = stderr_path
        with stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(args, cwd=NODE_DIR, env=env, stderr=stderr, stdout=subprocess.PIPE,
                                         stdin=subprocess.PIPE if stdio else subprocess.DEVNULL)
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._stdout: list[bytes] = []
        self._reader = threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _drain(self, stream: IO[bytes]) -> None:
        for line in stream:
            self._stdout.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        """All of stdout, once the client has exited (and so closed it)."""
        self._reader.join(timeout=30)
        return b"".join(self._stdout).decode(errors="replace")

    def wait(self, timeout: float = CLIENT_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"the client did not finish within {timeout:.0f} s:\n"
                                 f"{self.stderr()[-4000:]}") from None

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        stop_process(self.proc)

    # -- JSON-RPC over stdio (mcp-remote) --

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def receive(self, request_id: int, timeout: float = CLIENT_TIMEOUT) -> dict[str, Any]:
        """The answer to ``request_id`` (notifications and other lines are skipped)."""

        def next_line() -> bytes | None:
            try:
                return self._lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no answer to request {request_id} within {timeout:.0f} s:\n"
                                     f"{self.stderr()[-4000:]}") from None

        while (line := next_line()) is not None:
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if isinstance(message, dict) and message.get("id") == request_id:
                    return message
        self.proc.wait(timeout=30)
        raise AssertionError(f"the client exited {self.proc.returncode} before answering request {request_id}:\n"
                             f"{self.stderr()[-4000:]}")

    def call(self, request_id: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}})
        answer = self.receive(request_id)
        assert "result" in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    def close(self) -> int:
        """Hang up stdio as an MCP host does when it is done; the exit code."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.wait()


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], stderr_path: Path, *, stdio: bool = False) -> Iterator[Child]:
    child = Child(args, env, stderr_path, stdio=stdio)
    try:
        yield child
    finally:
        child.stop()


class Inspector:
    """``mcp-inspector --cli`` with its own HOME (catalog, OAuth state and secrets.json: the file secret store,
    as on a machine without a keychain), a loopback OAuth callback and the capturing browser.
    MCP_AUTO_OPEN_ENABLED=true is how the CLI allows an interactive sign-in without a TTY."""

    def __init__(self, tools: NodeTools, workdir: Path) -> None:
        self.tools = tools
        self.workdir = workdir
        self.home = workdir / "home"
        self.home.mkdir(parents=True)
        self.browser = Browser(workdir / "browser")
        self.callback = f"http://127.0.0.1:{devdb.free_port()}/oauth/callback"
        self._runs = 0

    def start(self, url: str, *args: str) -> contextlib.AbstractContextManager[Child]:
        self._runs += 1
        env = {**headless(self.tools.env()), "HOME": str(self.home), "MCP_INSPECTOR_SECRET_STORE": "file",
               "MCP_AUTO_OPEN_ENABLED": "true", **self.browser.env()}
        command = [str(self.tools.node), str(self.tools.inspector), "--cli", url, "--transport", "http", *args,
                   "--callback-url", self.callback, "--format", "json", "--quiet"]
        return running(command, env, self.workdir / f"inspector-{self._runs}.stderr")

    def run(self, url: str, *args: str) -> tuple[int, Any, str]:
        """One run to its end: (exit code, the JSON result on stdout or None, stderr)."""
        with self.start(url, *args) as child:
            code = child.wait()
            stdout = child.stdout()
        return code, json.loads(stdout) if stdout.strip() else None, child.stderr()


def error_envelope(stderr: str) -> dict[str, Any]:
    """The CLI's ``{"error": {"code", "message"}}`` (the last such line of stderr)."""
    lines = [line for line in stderr.splitlines() if line.startswith('{"error"')]
    assert lines, stderr
    error: dict[str, Any] = json.loads(lines[-1])["error"]
    return error


class McpRemote:
    """``mcp-remote <url> [port]`` as an MCP host runs it (stdio), with its token store in MCP_REMOTE_CONFIG_DIR
    and HOME under the test's tmp dir, and the capturing browser."""

    def __init__(self, tools: NodeTools, workdir: Path) -> None:
        self.tools = tools
        self.workdir = workdir
        self.home = workdir / "home"
        self.home.mkdir(parents=True)
        self.config_dir = workdir / "mcp-auth"
        self.browser = Browser(workdir / "browser")
        self._runs = 0

    def start(self, url: str, *args: str,
              env: dict[str, str] | None = None) -> contextlib.AbstractContextManager[Child]:
        self._runs += 1
        full_env = {**headless(self.tools.env()), "HOME": str(self.home),
                    "MCP_REMOTE_CONFIG_DIR": str(self.config_dir), **self.browser.env(), **(env or {})}
        command = [str(self.tools.node), str(self.tools.mcp_remote), url, *args]
        return running(command, full_env, self.workdir / f"mcp-remote-{self._runs}.stderr", stdio=True)

    def stored(self, suffix: str) -> dict[str, Any]:
        """One of the JSON files it keeps per server (``tokens.json``, ``client_info.json``)."""
        found = list(self.config_dir.glob(f"mcp-remote-*/*_{suffix}"))
        assert len(found) == 1, (suffix, sorted(path.name for path in self.config_dir.rglob("*")))
        data: dict[str, Any] = json.loads(found[0].read_text())
        return data


def initialize(child: Child) -> dict[str, Any]:
    result = child.call(1, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                          "clientInfo": {"name": "pgmcp-interop-host", "version": "1"}})
    child.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    return result


def query(marker: str) -> dict[str, Any]:
    """tools/call params of a query that tags its audit record with ``marker``."""
    return {"name": "query", "arguments": {"sql": f"SELECT '{marker}' AS tag"}}


def tagged(result: dict[str, Any], marker: str) -> None:
    assert result["isError"] is False, result
    assert result["structuredContent"]["rows"] == [{"tag": marker}]


# --- the MCP Inspector's CLI ------------------------------------------------------------------------------------


def test_inspector_without_a_token_fails_auth_required_naming_the_metadata(stack, tmp_path):
    """--stored-auth-only (the CI mode): no prompt, exit 3 auth_required, and the message the CLI shows is this
    server's 401 body, which names where the authorization server is found."""
    inspector = Inspector(node_tools(), tmp_path)
    refusals = stack.refusals()
    code, output, stderr = inspector.run(stack.server.url, "--method", "tools/list", "--stored-auth-only")
    assert (code, output) == (3, None), stderr
    error = error_envelope(stderr)
    assert error["code"] == "auth_required"
    assert stack.metadata_url in error["message"]
    assert stack.refusals() > refusals
    assert inspector.browser.opened() == []


def test_inspector_signs_in_through_the_metadata_with_dcr_and_pkce_and_lists_tools(stack, tmp_path):
    inspector = Inspector(node_tools(), tmp_path)
    before = stack.idp.stats()
    fetches = stack.metadata_fetches()
    with inspector.start(stack.server.url, "--method", "tools/list") as child:
        url = inspector.browser.wait_for_url(child)
        sign_in(url, "alice")
        code = child.wait()
        output = json.loads(child.stdout())
    stderr = child.stderr()
    assert code == 0, stderr
    assert [tool["name"] for tool in output["result"]["tools"]] == BUILT_IN_TOOLS
    # It found the authorization server through this server: the 401, then the metadata, then the provider.
    assert stack.metadata_fetches() > fetches
    after = stack.idp.stats()
    assert after["discovery_requests"] > before["discovery_requests"]
    assert after["token_requests"] == before["token_requests"] + 1  # one code exchange
    # The authorization request: a client it registered itself, PKCE S256, this server as the RFC 8707 resource,
    # the scopes of the 401 challenge, the loopback callback.
    sent = authorization_request(url)
    assert url.startswith(f"{stack.idp.issuer}/auth?")
    assert authorization_request(shown_url(stderr, "Please navigate to:")) == sent
    assert sent["client_id"] != SERVICE and sent["redirect_uri"] == inspector.callback
    assert sent["code_challenge_method"] == "S256" and sent["code_challenge"]
    assert sent["resource"] == stack.server.url
    assert set(sent["scope"].split()) >= BASELINE_SCOPES

    # The token is kept (secrets.json): a later CI-style run signs nobody in and calls a tool as alice.
    marker = "inspector-" + uuid.uuid4().hex[:8]
    code, output, stderr = inspector.run(stack.server.url, "--stored-auth-only", "--method", "tools/call",
                                         "--tool-name", "query", "--tool-args-json",
                                         json.dumps(query(marker)["arguments"]))
    assert code == 0, stderr
    tagged(output["result"], marker)
    assert len(inspector.browser.opened()) == 1
    record = stack.audit(marker)
    assert (record["subject"], record["issuer"], record["client_id"]) == ("alice", stack.idp.issuer,
                                                                            sent["client_id"])
    assert record["client_name"] == "inspector-cli" and set(record["scopes"]) == BASELINE_SCOPES


def test_inspector_calls_tools_with_a_bearer_token_from_the_provider(stack, tmp_path):
    inspector = Inspector(node_tools(), tmp_path)
    marker = "bearer-" + uuid.uuid4().hex[:8]
    code, output, stderr = inspector.run(stack.server.url, "--stored-auth-only", "--header",
                                         f"Authorization: Bearer {stack.service_token()}", "--method", "tools/call",
                                         "--tool-name", "query", "--tool-args-json",
                                         json.dumps(query(marker)["arguments"]))
    assert code == 0, stderr
    tagged(output["result"], marker)
    assert stack.audit(marker)["subject"] == SERVICE


# --- mcp-remote -------------------------------------------------------------------------------------------------


def test_mcp_remote_signs_in_with_dcr_and_the_browser_flow_and_proxies_stdio(stack, tmp_path):
    remote = McpRemote(node_tools(), tmp_path)
    port = devdb.free_port()  # the callback port, given explicitly, as a host configuration would
    callback = f"http://localhost:{port}/oauth/callback"
    fetches = stack.metadata_fetches()
    before = stack.idp.stats()
    marker = "remote-" + uuid.uuid4().hex[:8]
    with remote.start(stack.server.url, str(port), "--auth-timeout", str(int(CLIENT_TIMEOUT))) as child:
        url = remote.browser.wait_for_url(child)
        sign_in(url, "alice")
        hello = initialize(child)
        tools = child.call(2, "tools/list")["tools"]
        tagged(child.call(3, "tools/call", query(marker)), marker)
        assert child.close() == 0, child.stderr()
    stderr = child.stderr()
    assert hello["serverInfo"]["name"] == "postgres-mcp-server" and hello["protocolVersion"] == "2025-11-25"
    assert [tool["name"] for tool in tools] == BUILT_IN_TOOLS
    assert stack.metadata_fetches() > fetches
    assert stack.idp.stats()["token_requests"] == before["token_requests"] + 1
    sent = authorization_request(url)
    assert authorization_request(shown_url(stderr, "Please authorize this client by visiting:")) == sent
    assert url.startswith(f"{stack.idp.issuer}/auth?") and sent["redirect_uri"] == callback
    assert sent["code_challenge_method"] == "S256" and sent["resource"] == stack.server.url
    assert set(sent["scope"].split()) >= BASELINE_SCOPES
    # It registered itself (RFC 7591) and keeps the registration and the tokens where it was told to.
    client = remote.stored("client_info.json")
    assert client["client_id"] == sent["client_id"] != SERVICE and callback in client["redirect_uris"]
    claims = jwt.decode(remote.stored("tokens.json")["access_token"], options={"verify_signature": False})
    assert (claims["aud"], claims["sub"], claims["iss"]) == (stack.server.url, "alice", stack.idp.issuer)
    assert not (remote.home / ".mcp-auth").exists()
    record = stack.audit(marker)
    assert (record["subject"], record["client_id"]) == ("alice", sent["client_id"])
    assert record["client_name"] == "pgmcp-interop-host (via mcp-remote 0.15.1)"

    # The next start (the host restarting) uses the stored tokens: no browser.
    marker = "remote-again-" + uuid.uuid4().hex[:8]
    with remote.start(stack.server.url, str(port)) as child:
        initialize(child)
        tagged(child.call(2, "tools/call", query(marker)), marker)
        assert child.close() == 0, child.stderr()
    assert len(remote.browser.opened()) == 1 and "Please authorize" not in child.stderr()
    assert stack.audit(marker)["subject"] == "alice"


def test_mcp_remote_signs_a_service_in_with_client_credentials_in_the_2026_era(stack, tmp_path):
    remote = McpRemote(node_tools(), tmp_path)
    marker = "remote-service-" + uuid.uuid4().hex[:8]
    info = json.dumps({"client_id": SERVICE, "client_secret": "${INTEROP_CLIENT_SECRET}"})
    with remote.start(stack.server.url, "--client-credentials", "--static-oauth-client-info", info,
                      "--protocol", "auto", env={"INTEROP_CLIENT_SECRET": SERVICE_SECRET}) as child:
        initialize(child)
        assert [tool["name"] for tool in child.call(2, "tools/list")["tools"]] == BUILT_IN_TOOLS
        tagged(child.call(3, "tools/call", query(marker)), marker)
        assert child.close() == 0, child.stderr()
    assert remote.browser.opened() == []
    record = stack.audit(marker)
    assert (record["subject"], record["client_id"]) == (SERVICE, SERVICE)
    assert record["protocol_version"] == "2026-07-28"  # mcp-remote spoke the modern era to the server


# --- the conformance suite --------------------------------------------------------------------------------------


def test_the_pinned_conformance_suite_has_no_server_auth_scenario():
    """Its auth scenarios are all client scenarios (the suite plays MCP server and authorization server and
    grades the client), so none can run against this server; when a version adds one, run it here."""
    tools = node_tools()
    listed = {}
    for side in ("--server", "--client"):
        done = tools.run(tools.conformance, "list", side)
        assert done.returncode == 0, done.stderr
        listed[side] = re.findall(r"^\s+- (\S+)", done.stdout, flags=re.MULTILINE)
    assert len(listed["--server"]) >= 30
    assert [name for name in listed["--server"] if "auth" in name] == []
    assert any(name.startswith("auth/") for name in listed["--client"])
