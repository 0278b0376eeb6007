"""A real OAuth 2.1 authorization server on loopback for the tests: oidc-provider (tests/node/authorization_server.mjs).

Why a real one: the resource server must interoperate with what an identity provider actually emits
(RFC 9068 JWTs, RFC 8707 resource indicators, key rotation, RFC 8414 discovery), and the MCP SDK's
OAuth client must be able to register itself, log a user in and step up its scopes against it. A
hand-rolled stub would only agree with our own reading of the RFCs.

Pieces:
- ``generate_key`` / ``private_pem`` / ``public_jwks`` / ``sign_token``: RS256 keys the provider signs with,
  which tests can also use to mint their own tokens (PyJWT) that look like the provider's.
- ``AuthorizationServer``: starts the provider under the pinned Node 22, plus its test-control routes
  (``rotate``, ``jwks_down``, ``stats``) and the OAuth calls tests need (client_credentials, DCR, code exchange).
- ``login``: drives oidc-provider's development login and consent pages like a browser and returns the
  redirect to the client's redirect_uri; ``SdkLogin`` wraps it as the MCP SDK's redirect/callback handlers.
- ``running_authorization_server`` and the ``authorization_server_factory`` fixture (import it into a test module).

Any http://127.0.0.1 or http://localhost resource URL is accepted as an audience; every token is a JWT
with scope drawn from ``API_SCOPES`` and lives ``ACCESS_TOKEN_TTL`` seconds.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import queue
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit
from urllib.request import BaseHandler, HTTPCookieProcessor, HTTPErrorProcessor, OpenerDirector, Request, build_opener

import anyio.to_thread
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp.shared.auth import AuthorizationCodeResult

from tests.helpers import stop_process
from tests.nodejs import NODE_DIR, node_tools

API_SCOPES = "db.schema db.read db.write"
ACCESS_TOKEN_TTL = 300
START_TIMEOUT = 60.0  # Node's first start on a loaded 2-core machine can take many seconds
HTTP_TIMEOUT = 15.0

Jwk = dict[str, str]
Json = dict[str, Any]


# --- keys -----------------------------------------------------------------------------------------


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_to_int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def generate_key(kid: str) -> Jwk:
    """A fresh RSA 2048 private JWK (RS256, use sig); ``kid`` is what the provider puts in token headers."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = private.private_numbers()
    public = numbers.public_numbers
    fields = {"n": public.n, "e": public.e, "d": numbers.d, "p": numbers.p, "q": numbers.q,
              "dp": numbers.dmp1, "dq": numbers.dmq1, "qi": numbers.iqmp}
    return {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
            **{name: _b64url_uint(value) for name, value in fields.items()}}


def private_pem(jwk: Mapping[str, str]) -> bytes:
    """The PEM of a private JWK, for ``jwt.encode(..., private_pem(key), algorithm="RS256")``."""
    public = rsa.RSAPublicNumbers(_b64url_to_int(jwk["e"]), _b64url_to_int(jwk["n"]))
    numbers = rsa.RSAPrivateNumbers(
        p=_b64url_to_int(jwk["p"]), q=_b64url_to_int(jwk["q"]), d=_b64url_to_int(jwk["d"]),
        dmp1=_b64url_to_int(jwk["dp"]), dmq1=_b64url_to_int(jwk["dq"]), iqmp=_b64url_to_int(jwk["qi"]),
        public_numbers=public)
    return numbers.private_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption())


def public_jwks(keys: Sequence[Mapping[str, str]]) -> Json:
    """The public half of private JWKs, as a JWKS document (what a /jwks endpoint serves)."""
    public_fields = ("kty", "kid", "alg", "use", "n", "e")
    return {"keys": [{name: key[name] for name in public_fields if name in key} for key in keys]}


def sign_token(jwk: Mapping[str, str], claims: Mapping[str, Any], *, typ: str = "at+jwt") -> str:
    """A JWT signed with ``jwk`` and its kid, shaped like the provider's: for tokens it would never issue."""
    return jwt.encode(dict(claims), private_pem(jwk), algorithm="RS256", headers={"kid": jwk["kid"], "typ": typ})


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge): the provider requires PKCE S256 for every authorization request."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def service_client(client_id: str, secret: str, *, scope: str = API_SCOPES) -> Json:
    """oidc-provider metadata of a confidential client_credentials client (secret sent with HTTP Basic)."""
    return {"client_id": client_id, "client_secret": secret, "grant_types": ["client_credentials"],
            "redirect_uris": [], "response_types": [], "scope": scope}


# --- HTTP -----------------------------------------------------------------------------------------


class HttpError(RuntimeError):
    """An answer the caller did not expect; carries the status and body so the test failure says why."""

    def __init__(self, method: str, url: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {url} answered {status}: {body[:2000].decode('utf-8', 'replace')}")
        self.status = status
        self.body = body


class _Reply:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


class _PassThrough(HTTPErrorProcessor):
    """Hands every response back as is: no HTTPError for 4xx/5xx and no redirect following (``login`` must
    stop at the redirect to the client instead of fetching it, and errors should show their body)."""

    def http_response(self, request: Request, response: Any) -> Any:
        return response

    https_response = http_response


def _opener(*handlers: BaseHandler) -> OpenerDirector:
    return build_opener(_PassThrough(), *handlers)


def _send(opener: OpenerDirector, method: str, url: str, *, form: Mapping[str, str] | None = None,
          body: Any = None, headers: Mapping[str, str] | None = None) -> _Reply:
    data, all_headers = None, dict(headers or {})
    if form is not None:
        data = urlencode(form).encode("ascii")
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode("utf-8")
        all_headers["Content-Type"] = "application/json"
    with opener.open(Request(url, data=data, headers=all_headers, method=method), timeout=HTTP_TIMEOUT) as response:
        return _Reply(response.status, dict(response.headers.items()), response.read())


def _basic(client_id: str, secret: str) -> dict[str, str]:
    pair = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


# --- the server -----------------------------------------------------------------------------------


class AuthorizationServer:
    """oidc-provider on 127.0.0.1 in a Node 22 child process; ``start`` it, ``stop`` it (or use ``with``)."""

    def __init__(self) -> None:
        self.issuer = ""
        self.port = 0
        self.keys: list[Jwk] = []  # the private JWKs in use, the signing one first (mint look-alike tokens with it)
        self._process: subprocess.Popen[str] | None = None
        self._workdir: Path | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._http = _opener()

    def __enter__(self) -> AuthorizationServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def log(self) -> str:
        """Everything Node wrote to stderr (oidc-provider warnings, server_error stacks)."""
        path = self._workdir / "stderr.log" if self._workdir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def start(self, keys: Sequence[Mapping[str, str]] | None = None, clients: Sequence[Mapping[str, Any]] = (),
              claims: Mapping[str, Any] | None = None, *, port: int = 0) -> AuthorizationServer:
        """Spawn the provider and wait for its ready line. ``keys``: private JWKs, the first signs (default: one
        fresh key "as-key-1"); ``clients``: oidc-provider client metadata (see ``service_client``); ``claims``:
        {"accounts": {sub: {...}}, "clients": {client_id: {...}}} added to access tokens."""
        tools = node_tools()
        self._workdir = Path(tempfile.mkdtemp(prefix="pgmcp-oauth-as-"))
        keys_file = self._workdir / "keys.json"
        self.keys = [dict(key) for key in keys or [generate_key("as-key-1")]]
        keys_file.write_text(json.dumps({"keys": self.keys}))
        keys_file.chmod(0o600)
        env = {"AS_PORT": str(port), "AS_KEYS_FILE": str(keys_file), "AS_CLIENTS_JSON": json.dumps(list(clients)),
               "AS_CLAIMS_JSON": json.dumps(dict(claims or {}))}
        with (self._workdir / "stderr.log").open("w") as stderr:
            self._process = subprocess.Popen(
                [str(tools.node), str(tools.authorization_server)], cwd=NODE_DIR, env={**tools.env(), **env},
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True)
        threading.Thread(target=self._drain, args=(self._process,), daemon=True).start()
        try:
            ready = self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.issuer, self.port = ready["issuer"], int(ready["port"])
        return self

    def _drain(self, process: subprocess.Popen[str]) -> None:
        """Read stdout to its end (so Node never blocks on a full pipe); lines go to the ready check."""
        assert process.stdout is not None
        for line in process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _wait_ready(self) -> Json:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:  # stdout closed: Node is exiting; let it finish so its exit code is known
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=5)
                break
            with contextlib.suppress(ValueError):
                found = json.loads(line)
                if isinstance(found, dict) and "issuer" in found:
                    return found
        code = self._process.poll()
        state = f"exited {code}" if code is not None else f"not ready after {START_TIMEOUT:.0f}s"
        raise RuntimeError(f"authorization server failed to start ({state}); node stderr:\n{self.log[-4000:]}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited after 10 s; removes the key files. Safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # -- plain requests --

    def url(self, path: str) -> str:
        return f"{self.issuer}{path}"

    def request(self, method: str, path: str, **options: Any) -> _Reply:
        """One request to the provider (``form=`` or ``body=`` JSON, ``headers=``); any status comes back."""
        return _send(self._http, method, self.url(path), **options)

    def _expect(self, method: str, path: str, statuses: tuple[int, ...] = (200,), **options: Any) -> Any:
        reply = self.request(method, path, **options)
        if reply.status not in statuses:
            raise HttpError(method, self.url(path), reply.status, reply.body)
        return reply.json()

    def metadata(self) -> Json:
        """RFC 8414 metadata (counts as a discovery request in ``stats``)."""
        return self._expect("GET", "/.well-known/oauth-authorization-server")

    def jwks(self) -> Json:
        return self._expect("GET", "/jwks")

    # -- test control --

    def rotate(self, keys: Sequence[Mapping[str, str]]) -> None:
        """Serve later requests from a new Provider holding ``keys`` (first signs): the IdP rotating its key."""
        self._expect("POST", "/_test/keys", body={"keys": [dict(key) for key in keys]})
        self.keys = [dict(key) for key in keys]

    def jwks_down(self, down: bool) -> None:
        """While down, GET /jwks answers 503 (the IdP's key endpoint failing)."""
        self._expect("POST", "/_test/jwks", body={"down": down})

    def stats(self) -> dict[str, int]:
        """{"jwks_requests", "discovery_requests", "token_requests"} seen since start (across rotations)."""
        return self._expect("GET", "/_test/stats")

    # -- OAuth calls --

    def client_credentials_token(self, client_id: str, secret: str, *, scope: str, resource: str) -> Json:
        """The token response of a client_credentials grant (client_secret_basic); raises HttpError with the body."""
        form = {"grant_type": "client_credentials", "scope": scope, "resource": resource}
        return self._expect("POST", "/token", form=form, headers=_basic(client_id, secret))

    def register_client(self, redirect_uris: Sequence[str], **metadata: Any) -> Json:
        """Dynamic client registration (RFC 7591), open; defaults to an auth-code + refresh client using
        client_secret_basic. The registered client may use every API scope, whatever ``scope`` it sends."""
        body = {"redirect_uris": list(redirect_uris), "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"], "token_endpoint_auth_method": "client_secret_basic", **metadata}
        return self._expect("POST", "/reg", (201,), body=body)

    def authorization_url(self, client_id: str, redirect_uri: str, *, scope: str, resource: str,
                          code_challenge: str, state: str) -> str:
        """An /auth URL for the code flow with PKCE S256 and an RFC 8707 resource, as the MCP SDK builds it."""
        query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
                 "resource": resource, "state": state, "code_challenge": code_challenge,
                 "code_challenge_method": "S256"}
        return f"{self.url('/auth')}?{urlencode(query)}"

    def exchange_code(self, client: Mapping[str, Any], code: str, *, redirect_uri: str, code_verifier: str,
                      resource: str) -> Json:
        """The token response for an authorization code; ``client`` is the registration response."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": code_verifier, "resource": resource}
        headers = _basic(client["client_id"], client["client_secret"]) if client.get("client_secret") else {}
        if not headers:
            form["client_id"] = client["client_id"]
        return self._expect("POST", "/token", form=form, headers=headers)


# --- the browser part -----------------------------------------------------------------------------


class LoginError(RuntimeError):
    """The login did not end in a redirect carrying a code; ``location`` is the redirect when there was one."""

    def __init__(self, message: str, location: str | None = None) -> None:
        super().__init__(message)
        self.location = location


class _FormParser(HTMLParser):
    """The first <form> of a page: its action and its <input> names with their values."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
        elif tag == "input" and self.action is not None and not self._done and "name" in values:
            self.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.action is not None:
            self._done = True


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _fill(page: _Reply, url: str, username: str) -> tuple[str, dict[str, str]]:
    """Where the page's form posts and what a user would submit: the login name (any password) or consent."""
    parser = _FormParser()
    parser.feed(page.body.decode("utf-8", "replace"))
    if parser.action is None:
        raise LoginError(f"{url} answered {page.status} without a form: {page.body[:2000]!r}")
    fields = dict(parser.fields)
    if "login" in fields:
        fields.update(login=username, password="any-password")
    return urljoin(url, parser.action), fields


def login(authorization_url: str, username: str, *, max_steps: int = 12) -> str:
    """Log ``username`` in through oidc-provider's devInteractions like a browser, and return the redirect
    Location to the client's redirect_uri (not fetched), which carries ``code``, ``state`` and ``iss``.

    GET the authorization URL, follow the provider's own redirects with a cookie jar, submit the login form
    (any password; the account id, so ``sub``, is the name), submit the consent form (it grants the requested
    scopes of the requested resource), until a redirect leaves the provider's origin."""
    browser = _opener(HTTPCookieProcessor())
    provider = _origin(authorization_url)
    url, reply = authorization_url, _send(browser, "GET", authorization_url)
    for _ in range(max_steps):
        if 300 <= reply.status < 400:
            url = urljoin(url, reply.headers["Location"])
            if _origin(url) != provider:
                return _checked(url)
            reply = _send(browser, "GET", url)
        elif reply.status == 200:
            url, fields = _fill(reply, url, username)
            reply = _send(browser, "POST", url, form=fields)
        else:
            raise LoginError(f"{url} answered {reply.status}: {reply.body[:2000]!r}")
    raise LoginError(f"no redirect to the client after {max_steps} steps (last: {url})")


def _checked(location: str) -> str:
    query = parse_qs(urlsplit(location).query)
    if "code" not in query:
        raise LoginError(f"the provider redirected to the client without a code: {location}", location)
    return location


class SdkLogin:
    """The MCP SDK's ``redirect_handler`` / ``callback_handler`` pair for ``OAuthClientProvider``: the
    "browser" logs ``username`` in (in a worker thread, the event loop keeps running) and the callback
    hands back code, state and the RFC 9207 ``iss`` (the SDK requires it: oidc-provider advertises it).
    ``authorization_urls`` records every URL the SDK opened, e.g. to check the scope of a step-up."""

    def __init__(self, username: str) -> None:
        self.username = username
        self.authorization_urls: list[str] = []
        self._location: str | None = None

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorization_urls.append(authorization_url)
        self._location = await anyio.to_thread.run_sync(login, authorization_url, self.username)

    async def callback_handler(self) -> AuthorizationCodeResult:
        if self._location is None:
            raise LoginError("callback_handler called before redirect_handler")
        query = {name: values[0] for name, values in parse_qs(urlsplit(self._location).query).items()}
        self._location = None
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))


# --- pytest ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_authorization_server(keys: Sequence[Mapping[str, str]] | None = None,
                                 clients: Sequence[Mapping[str, Any]] = (),
                                 claims: Mapping[str, Any] | None = None) -> Iterator[AuthorizationServer]:
    """``with running_authorization_server(...) as server:`` — started, and stopped on the way out."""
    server = AuthorizationServer()
    try:
        yield server.start(keys, clients, claims)
    finally:
        server.stop()


@pytest.fixture
def authorization_server_factory() -> Iterator[Callable[..., AuthorizationServer]]:
    """A factory: ``authorization_server_factory(keys, clients, claims)`` starts a server, stopped after the test.
    Import it into a test module (``from tests.oauth_server import authorization_server_factory``); for one
    server per module, write a module-scoped fixture around ``running_authorization_server``."""
    servers: list[AuthorizationServer] = []

    def start(keys: Sequence[Mapping[str, str]] | None = None, clients: Sequence[Mapping[str, Any]] = (),
              claims: Mapping[str, Any] | None = None) -> AuthorizationServer:
        servers.append(AuthorizationServer())
        return servers[-1].start(keys, clients, claims)

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


__all__ = ["ACCESS_TOKEN_TTL", "API_SCOPES", "AuthorizationServer", "HttpError", "LoginError", "SdkLogin",
           "authorization_server_factory", "generate_key", "login", "pkce_pair", "private_pem", "public_jwks",
           "running_authorization_server", "service_client", "sign_token"]

