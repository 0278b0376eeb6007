"""The /mcp fast lane: it takes only plain requests, and builds the environ gunicorn's parser would.

Every request the lane accepts is also parsed by gunicorn (its parser and
``wsgi.create``, as the worker would run them) and the two environs compared
key by key; every request it declines must be one where gunicorn's answer or
environ could differ (then gunicorn's own path serves it). The live server
tests (test_protocol_http and the rest) go through the lane for ordinary
calls and through gunicorn's parser for the unusual ones.
"""

from __future__ import annotations

import http.client
import socket

import pytest
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.parser import RequestParser

from pgmcp_http.serving import fastlane

CFG = Config()
LIMITS = fastlane.Limits(line=CFG.limit_request_line, fields=CFG.limit_request_fields,
                         field_size=CFG.limit_request_field_size,
                         scheme_headers=frozenset(name.upper() for name in CFG.secure_scheme_headers))
CLIENT, SERVER = ("127.0.0.1", 50000), ("127.0.0.1", 3401)
BODY = b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}'
IGNORED = {"wsgi.input", "gunicorn.socket", "wsgi.errors", "wsgi.early_hints", "wsgi.file_wrapper"}


def request(*headers: str, body: bytes = BODY, first: str = "POST /mcp HTTP/1.1", length: bool = True) -> bytes:
    lines = [first, "Host: 127.0.0.1:3401", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def gunicorn_environ(data: bytes) -> dict:
    req = next(RequestParser(CFG, iter([data]), CLIENT))
    _, environ = wsgi.create(req, None, CLIENT, SERVER, CFG)
    environ["wsgi.multithread"] = True
    return environ


ACCEPTED = [
    request("Content-Type: application/json", "Accept: application/json, text/event-stream"),
    request("Content-Type: application/json; charset=utf-8", "MCP-Protocol-Version: 2026-07-28",
            "Mcp-Method: tools/call", "Mcp-Name: =?base64?cXVlcnk=?=", "Authorization: Bearer abc.def",
            "X-Request-Id:   padded\t", "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    request("Content-Type: application/json", "Connection: close"),
    request("Content-Type: application/json", "Connection: keep-alive", body=b""),
    request("Content-Type: application/json", "X-Forwarded-For: 10.0.0.1", "Origin: http://localhost:6274"),
]
DECLINED = [
    request(first="GET /mcp HTTP/1.1", length=False, body=b""),
    request(first="POST /mcp?x=1 HTTP/1.1"),
    request(first="POST /mcp/tools/call HTTP/1.1"),
    request(first="POST /mcp HTTP/1.0"),
    request("Content-Type: application/json", length=False),
    request("Transfer-Encoding: chunked", length=False, body=b"2\r\n{}\r\n0\r\n\r\n"),
    request("Expect: 100-continue"),
    request("Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings", "HTTP2-Settings: AAMAAABkAAQAAP__"),
    request("X_Forwarded_For: 127.0.0.1"),
    request("Mcp-Method: tools/list", "Mcp-Method: tools/list"),
    request("Host: evil.example"),
    request("X-Note: caf\xe9"),
    request("X-Note: a\x7fb"),  # DEL and other control characters: gunicorn refuses them
    request("X-Note: a\x01b"),
    request("X-Folded: a", " b"),
    request("X-Forwarded-Proto: https"),
    request("Content-Length: 1"),  # a second, conflicting Content-Length
    request("Content-Type: application/json")[:-1],  # the body has not fully arrived
    request("Content-Type: application/json") + b"POST /mcp HTTP/1.1\r\n",  # pipelined bytes behind it
    request(*[f"X-H{n}: v" for n in range(CFG.limit_request_fields + 1)]),
]


@pytest.mark.parametrize("data", ACCEPTED, ids=range(len(ACCEPTED)))
def test_an_accepted_request_gets_gunicorns_environ(data):
    simple = fastlane.read(data, LIMITS, trusted_peer=True)
    assert simple is not None
    base = wsgi.base_environ(CFG)
    base["wsgi.multithread"] = True
    ours = fastlane.environ_for(simple, base, None, CLIENT, SERVER)
    theirs = gunicorn_environ(data)
    assert {k: v for k, v in ours.items() if k not in IGNORED} == {k: v for k, v in theirs.items() if k not in IGNORED}
    assert ours["wsgi.input"].read() == theirs["wsgi.input"].read()


@pytest.mark.parametrize("data", DECLINED, ids=range(len(DECLINED)))
def test_anything_unusual_is_left_to_gunicorn(data):
    assert fastlane.read(data, LIMITS, trusted_peer=True) is None


def test_a_scheme_header_from_an_untrusted_peer_takes_the_lane_as_gunicorn_ignores_it():
    data = request("X-Forwarded-Proto: https")
    assert fastlane.read(data, LIMITS, trusted_peer=False) is not None
    assert fastlane.read(data, LIMITS, trusted_peer=True) is None


def test_the_answer_is_one_whole_http_message():
    def app(environ, start_response):
        start_response("202 Accepted", [("Mcp-Session-Id", "s"), ("Content-Length", "0"), ("Connection", "x")])
        return [b""]

    data, keep = fastlane.answer(app, {}, keep_alive=True, server_software="gunicorn")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 202 Accepted" and keep and body == b""
    assert "Connection: keep-alive" in lines and "Mcp-Session-Id: s" in lines and "Content-Length: 0" in lines
    assert "Connection: x" not in lines and any(line.startswith("Date: ") for line in lines)


def test_live_server_answers_through_both_paths_on_one_connection(server):
    """Keep-alive across the lane and gunicorn's parser: a plain call, a chunked one, a plain one again."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    init = b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", ' \
           b'"capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}'
    for chunked in (False, True, False):
        if chunked:
            conn.request("POST", "/mcp", body=iter([init]), headers=headers)  # http.client sends it chunked
        else:
            conn.request("POST", "/mcp", body=init, headers=headers)
        reply = conn.getresponse()
        assert reply.status == 200 and b'"protocolVersion":"2025-11-25"' in reply.read()
        assert reply.getheader("Connection") == "keep-alive" and reply.getheader("X-Request-Id")
    conn.close()
    # A request whose bytes arrive in two writes (headers, then body) is still one request.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        data = request("Content-Type: application/json", "Accept: application/json", body=init)
        raw.sendall(data[:40])
        raw.sendall(data[40:])
        assert raw.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("host", ["", "localhost:1,evil.example", "localhost:3401 evil"])
def test_an_empty_or_malformed_host_is_refused_on_a_loopback_server(server, host):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        data = request("Content-Type: application/json", "Accept: application/json").replace(
            b"Host: 127.0.0.1:3401", f"Host: {host}".encode())
        raw.sendall(data)
        assert raw.recv(65536).startswith(b"HTTP/1.1 403 ")


def test_a_header_line_at_gunicorns_limit_is_left_to_gunicorn():
    name = "X-Long: "
    at_limit = request(name + "v" * (CFG.limit_request_field_size - len(name) - 2))  # with CRLF: the limit
    over = request(name + "v" * (CFG.limit_request_field_size - len(name) - 1))
    assert fastlane.read(at_limit, LIMITS, trusted_peer=True) is not None
    assert fastlane.read(over, LIMITS, trusted_peer=True) is None


@pytest.mark.parametrize("header", [("X-Bad", "a\r\nSet-Cookie: x=1"), ("X-Bad", "a\x7fb"), ("X-Bad", "a\x00"),
                                    ("X Bad", "v"), ("X-Bad:", "v")])
def test_a_response_header_gunicorn_would_refuse_is_refused(header):
    def app(environ, start_response):
        start_response("200 OK", [header])
        return [b""]

    with pytest.raises(ValueError, match="X.Bad"):
        fastlane.answer(app, {}, keep_alive=True, server_software="gunicorn")


@pytest.mark.parametrize("value", ["a\tb", "caf\xe9", "plain ascii ~!"])
def test_a_response_header_gunicorn_would_send_is_sent(value):
    """Tabs and bytes \\x80-\\xff pass as gunicorn lets them (the quick ASCII check falls back to the pattern)."""
    def app(environ, start_response):
        start_response("200 OK", [("X-Note", value)])
        return [b""]

    data, _ = fastlane.answer(app, {}, keep_alive=True, server_software="gunicorn")
    assert f"X-Note: {value}\r\n".encode("latin-1") in data


@pytest.mark.parametrize(("setting", "value"), [("accesslog", "-"), ("statsd_host", "127.0.0.1:8125")])
def test_the_lane_steps_aside_for_gunicorns_access_log_and_statsd(setting, value):
    """The lane writes neither gunicorn's access log nor its statsd metrics: with either configured,
    every request goes through gunicorn's own path."""
    from types import SimpleNamespace

    from pgmcp_http.serving.worker import FastLane

    assert FastLane.for_worker(SimpleNamespace(cfg=Config())) is not None
    cfg = Config()
    cfg.set(setting, value)
    assert FastLane.for_worker(SimpleNamespace(cfg=cfg)) is None


def test_a_content_length_too_long_to_be_a_number_is_left_to_gunicorn():
    """Python refuses to read a number of over 4,300 digits: the lane must decline, not raise."""
    data = request("Content-Length: " + "9" * 5000, body=b"{}", length=False)
    assert fastlane.read(data, LIMITS, trusted_peer=False) is None
