"""Limits that keep one client from stopping the server: slow senders, bursts, deep JSON, many params."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.helpers import request, start_server, wait_until

CALL = {"name": "query", "arguments": {"sql": "SELECT 1 AS one"}}
HEADERS = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def small(pg, tmp_path_factory):
    """One worker with two threads: easy to exhaust, so every guard is visible."""
    server = start_server(pg.readonly_url, tmp_path_factory.mktemp("limits"), workers=1, threads=2,
                          env={"REQUEST_READ_TIMEOUT": "1500", "REQUEST_QUEUE_LIMIT": "2",
                               "MAX_REQUEST_BYTES": "20000"})
    yield server
    server.stop()


def trickle(port: int, tail: bytes, stop: threading.Event, closed: list[float], *, head: bytes = b"",
            pause: float = 0.2, wait_for_close: bool = True) -> None:
    """Send ``head`` at once, then ``tail`` a byte at a time; record when the server hangs up (-1 when
    everything was sent and ``wait_for_close`` is off)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        for byte in tail:
            if stop.is_set():
                return
            try:
                sock.send(bytes([byte]))
            except OSError:
                closed.append(time.monotonic() - started)
                return
            time.sleep(pause)
        if not wait_for_close:
            closed.append(-1.0)  # sent everything without being cut off
            return
        sock.settimeout(5)
        try:
            if sock.recv(1024) == b"":
                closed.append(time.monotonic() - started)
        except OSError:
            closed.append(time.monotonic() - started)


@pytest.mark.parametrize("payload", [
    b"POST /mcp/tools/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n",
    b"POST /mcp/tools/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 60\r\n\r\n{\"name\": \"query\", ",
], ids=["slow-headers", "slow-body"])
def test_slow_clients_neither_block_others_nor_stay(small, payload):
    stop = threading.Event()
    closed: list[float] = []
    clients = [threading.Thread(target=trickle, args=(small.port, payload, stop, closed), daemon=True)
               for _ in range(12)]
    for client in clients:
        client.start()
    try:
        time.sleep(0.5)
        for _ in range(3):
            started = time.monotonic()
            status, _, body = request("POST", f"{small.base}/mcp/tools/call", CALL, HEADERS, timeout=10)
            assert status == 200 and body["structuredContent"]["rows"] == [{"one": 1}]
            assert time.monotonic() - started < 1.0
        for client in clients:
            client.join(timeout=10)
        assert len(closed) == 12 and max(closed) < 4.0  # cut off after REQUEST_READ_TIMEOUT (1.5 s)
    finally:
        stop.set()


def test_a_burst_beyond_the_queue_gets_a_fast_503(small):
    slow = {"name": "query", "arguments": {"sql": "SELECT pg_sleep(1)"}}

    def one(_: int) -> tuple[int, float, Any, dict[str, str]]:
        started = time.monotonic()
        status, headers, body = request("POST", f"{small.base}/mcp/tools/call", slow, HEADERS, timeout=20)
        return status, time.monotonic() - started, body, headers

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(one, range(10)))
    busy = [r for r in results if r[0] == 503]
    served = [r for r in results if r[0] == 200]
    assert busy and served and len(busy) + len(served) == 10
    for _, seconds, body, headers in busy:
        assert seconds < 0.5 and headers["retry-after"] == "1"
        assert body["error"]["message"].startswith("server busy:") and "REQUEST_QUEUE_LIMIT" in body["error"]["message"]
    assert request("POST", f"{small.base}/mcp/tools/call", CALL, HEADERS)[0] == 200


def test_deeply_nested_json_is_refused(small):
    deep: Any = 1
    for _ in range(80):
        deep = [deep]
    status, _, body = request("POST", f"{small.base}/mcp/tools/call",
                              {"name": "query", "arguments": {"sql": "SELECT 1", "params": [deep]}}, HEADERS)
    assert status == 400 and "more than 64 levels deep" in body["error"]
    message = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"deep": deep}}
    status, _, body = request("POST", small.url, message, {**HEADERS, "Accept": "application/json"})
    assert status == 400 and body["error"]["code"] == -32600 and "64 levels" in body["error"]["message"]


def test_too_many_params_are_refused_before_the_database(small):
    status, _, body = request("POST", f"{small.base}/mcp/tools/call",
                              {"name": "query", "arguments": {"sql": "SELECT $1", "params": list(range(1001))}},
                              HEADERS)
    assert status == 200 and body["isError"] is True
    assert "params" in body["content"][0]["text"] and "1000" in body["content"][0]["text"]


@pytest.mark.parametrize(("head", "tail"), [
    (b"POST /mcp/tools/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
     b"Content-Length: 60\r\n\r\n", b'{"name": "query", "arguments": {"sql": "SELECT 1"}}         '),
    (b"POST /mcp/tools/call HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5\r\n0\r\n\r\n\r\n", b"3\r\nabc\r\n" * 4),
    (b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
     b"POST /mcp/tools/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 40\r\n\r\n", b"{" * 40),
], ids=["headers-then-slow-body", "chunk-data-that-looks-like-the-end", "pipelined-slow-second-request"])
def test_a_slow_body_after_complete_headers_holds_no_thread(small, head, tail):
    stop = threading.Event()
    closed: list[float] = []
    clients = [threading.Thread(target=trickle, args=(small.port, tail, stop, closed), daemon=True,
                                kwargs={"head": head, "wait_for_close": False})
               for _ in range(6)]
    for client in clients:
        client.start()
    try:
        time.sleep(0.6)
        for _ in range(3):
            started = time.monotonic()
            status, _, _ = request("POST", f"{small.base}/mcp/tools/call", CALL, HEADERS, timeout=10)
            assert status in (200, 503) and time.monotonic() - started < 1.5
        for client in clients:
            client.join(timeout=15)
        assert len(closed) == 6 and all(0 <= seconds < 6 for seconds in closed), closed
    finally:
        stop.set()


def test_a_client_that_never_pauses_does_not_starve_another(pg, tmp_path):
    """A thread that has just answered serves the same client's next request itself (the worker's
    keep-alive linger) only while no other request waits: with one worker and one thread, a client
    sending back to back must not keep a second client waiting for more than a call or two."""
    server = start_server(pg.readonly_url, tmp_path, workers=1, threads=1)
    stop = threading.Event()
    served: list[float] = []

    def greedy() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        body = json.dumps(CALL)
        while not stop.is_set():
            conn.request("POST", "/mcp/tools/call", body, HEADERS)
            conn.getresponse().read()
            served.append(time.monotonic())
        conn.close()

    client = threading.Thread(target=greedy, daemon=True)
    try:
        client.start()
        wait_until(lambda: len(served) > 50, what="the greedy client served")
        waits = []
        for _ in range(5):
            started = time.monotonic()
            status, _, body = request("POST", f"{server.base}/mcp/tools/call", CALL, HEADERS, timeout=10)
            waits.append(time.monotonic() - started)
            assert status == 200 and body["structuredContent"]["rows"] == [{"one": 1}]
        assert max(waits) < 0.5, waits
        count = len(served)
        time.sleep(0.3)
        assert len(served) > count  # and the greedy one is still served
    finally:
        stop.set()
        client.join(timeout=10)
        server.stop()


def _exchange(port: int, data: bytes, *, timeout: float = 10) -> bytes:
    """Send ``data`` on a fresh connection and read the answer until the server closes or goes quiet."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                received += chunk
                if b"\r\n\r\n" in received and received.count(b"}") >= 2:
                    break
    return received


MCP_HEAD = (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Accept: application/json\r\n")


def test_a_chunked_body_of_tiny_chunks_over_the_limit_is_refused_at_once(small):
    """Its framing makes the bytes on the wire several times its data: the limit is on the data, and the
    worker answers 413 itself instead of leaving a thread to wait for the rest of a body it would refuse."""
    chunks = b"1\r\nx\r\n" * (20_000 + 1)  # MAX_REQUEST_BYTES=20000 of data, plus one, never terminated
    started = time.monotonic()
    answer = _exchange(small.port, MCP_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    assert time.monotonic() - started < 5
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == -32600 and "MAX_REQUEST_BYTES" in body["error"]["message"]
    assert request("POST", f"{small.base}/mcp/tools/call", CALL, HEADERS)[0] == 200


def test_chunked_bodies_of_tiny_chunks_under_the_limit_hold_no_thread(small):
    """More bytes on the wire than MAX_REQUEST_BYTES, less data: the body is not over the limit, so it
    waits for the rest on the event loop, not on one of the worker's two threads."""
    head = MCP_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"1\r\nx\r\n" * 5000  # 30 kB, 5,000 bytes of data
    senders = [socket.create_connection(("127.0.0.1", small.port)) for _ in range(2)]
    try:
        for sock in senders:
            sock.sendall(head)
        time.sleep(0.3)
        started = time.monotonic()
        assert request("POST", f"{small.base}/mcp/tools/call", CALL, HEADERS, timeout=5)[0] == 200
        assert time.monotonic() - started < 2
    finally:
        for sock in senders:
            sock.close()


def test_a_chunked_body_under_the_limit_still_works(small):
    message = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "ping"}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (message[:5], message[5:])) + b"0\r\n\r\n"
    answers: list[bytes] = []

    def answered() -> bool:
        # A 503 "busy" is the queue guard counting the previous test's senders until the worker sees them
        # close (later on a loaded machine): a right answer, but not the one this test is about.
        answers.append(_exchange(small.port, MCP_HEAD + b"MCP-Protocol-Version: 2025-03-26\r\n"
                                 b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks))
        return not answers[-1].startswith(b"HTTP/1.1 503")

    wait_until(answered, timeout=15, interval=0.2)
    answer = answers[-1]
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    assert b'"id":7' in answer or b'"id": 7' in answer


@pytest.mark.parametrize("path", ["/mcp", "/mcp/tools/call"])
def test_a_malformed_chunked_body_is_a_400_not_a_server_error(small, path):
    head = MCP_HEAD.replace(b"POST /mcp ", f"POST {path} ".encode())
    answer = _exchange(small.port, head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                       b"zz\r\nabc\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    message = body["error"]["message"] if path == "/mcp" else body["error"]
    assert "could not be read" in message
    assert path != "/mcp" or body["error"]["code"] == -32600
    assert not [line for line in small.log_lines() if line.get("message") == "unhandled error"]
    assert request("POST", f"{small.base}/mcp/tools/call", CALL, HEADERS)[0] == 200


def test_a_content_length_of_thousands_of_digits_is_answered_not_dropped(small):
    answer = _exchange(small.port, MCP_HEAD + b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n{}")
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
    assert request("POST", f"{small.base}/mcp/tools/call", CALL, HEADERS)[0] == 200
