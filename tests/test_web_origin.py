"""DNS-rebinding protection: which browser Origins and Host names reach /mcp (the conformance suite's
dns-rebinding-protection scenario checks the same against a live server)."""

from __future__ import annotations

import pytest

from pgmcp_http.web.http import forbidden_host, forbidden_origin
from tests.helpers import JSON_HEADERS, request

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


@pytest.mark.parametrize(("origin", "on_loopback", "anywhere"), [
    (None, False, False),                          # not a browser
    ("http://127.0.0.1:3401", False, True),        # a page of this machine: allowed while bound to loopback
    ("http://localhost", False, True),
    ("https://[::1]:8443/", False, True),
    ("http://LOCALHOST:6274", False, True),
    ("https://app.example.com", False, False),     # listed in ALLOWED_ORIGINS
    ("http://evil.example", True, True),           # a rebinding page keeps its own Origin
    ("http://localhost.evil.example", True, True),
    ("http://127.0.0.1.evil.example:80", True, True),
    ("http://user@localhost", True, True),
    ("http://localhost/path", True, True),
    ("file://localhost", True, True),
    ("null", True, True),
])
def test_forbidden_origin(origin, on_loopback, anywhere):
    allowed = ("https://app.example.com",)
    assert forbidden_origin(origin, allowed, "127.0.0.1") is on_loopback
    assert forbidden_origin(origin, allowed, "0.0.0.0") is anywhere


@pytest.mark.parametrize(("host", "forbidden"), [
    ("127.0.0.1:3401", False), ("localhost", False), ("[::1]:3401", False), ("LocalHost:1", False),
    ("evil.example:3401", True), ("localhost.evil.example", True), ("", True), (None, True),
])
def test_forbidden_host_on_loopback(host, forbidden):
    assert forbidden_host(host, "127.0.0.1") is forbidden
    assert forbidden_host(host, "0.0.0.0") is False


def test_a_local_page_is_served_and_a_rebinding_page_is_not(server):
    local = f"127.0.0.1:{server.port}"
    status, _, body = request("POST", server.url, PING, headers={**JSON_HEADERS, "Origin": f"http://{local}"})
    assert status == 400 and "Mcp-Session-Id" in body["error"]["message"]  # past the Origin check
    status, _, body = request("POST", server.url, PING, headers={**JSON_HEADERS, "Origin": "http://evil.example",
                                                                 "Host": "evil.example"})
    assert status == 403
