"""The gunicorn worker: gthread, plus two guards for a server that may face clients directly.

1. **Threads only parse complete requests.** A plain gthread worker reads a
   request's headers and body on one of its threads with blocking reads: a
   client that trickles a byte every second (slow-loris) keeps that thread,
   and a handful of such clients stop the worker. Here a thread takes
   whatever bytes have arrived without blocking and, while the request is
   incomplete, hands the connection back to the event loop (which holds it
   without a thread) until more arrive. A request still incomplete when bytes
   arrive ``REQUEST_READ_TIMEOUT`` after its first byte is dropped (one that
   goes silent is closed by gunicorn after ``keepalive``; either way it holds
   a file descriptor, never a thread). Content-Length and chunked framing are
   followed, and pipelined bytes go through the same path. The application
   never waits on a client's body, so a slow query is never cut. (Sending a
   response has no time limit of its own: a client that asks for large
   results and never reads them keeps a thread until TCP gives up; put a
   buffering proxy in front where clients are not trusted.)
2. **A bound on requests waiting for a thread.** Requests beyond
   ``REQUEST_QUEUE_LIMIT`` waiting in this worker are answered at once with
   503 and ``Retry-After`` instead of joining a queue that grows without
   bound while callers time out.

Two shortcuts keep the common case cheap (a third of the server's CPU per
call went to gunicorn's general machinery before them):

3. **The fast lane.** A gathered request that is a plain ``POST /mcp`` (see
   :mod:`pgmcp_http.serving.fastlane` for exactly what qualifies) is answered on
   the same thread from the bytes already read, with the environ gunicorn
   would build, and written back in one ``send``; anything else goes to
   gunicorn's parser as before.
4. **Keep-alive linger.** A thread that just answered serves the same
   client's next request itself when it arrives within KEEPALIVE_LINGER_MS
   and nothing else waits for a thread.

And one for how connections spread over the workers:

5. **Fair accepts.** Every worker waits on the same listening socket, and the
   first one awake takes each new connection: a burst of keep-alive
   connections (a load balancer's pool, an agent's client) could all land on
   one worker, which then serves them all on one core (its threads share one
   interpreter lock) while the others sit idle. A worker that already holds
   as many connections as it has threads (idle keep-alive ones included)
   stops listening for ACCEPT_STEP_ASIDE_MS per connection it would hold
   beyond that, at most ACCEPT_STEP_ASIDE_MAX_MS, so a less loaded worker
   takes the new connection first; then it listens as usual for
   ACCEPT_WINDOW_MS before it would step aside again. A new connection thus
   waits at most ACCEPT_STEP_ASIDE_MAX_MS more, and a worker that every
   sibling leaves the work to still accepts all but a sliver of the time
   (a burst of connections is never rate-limited).

(With gunicorn's own TLS, which this server does not use, the first guard
and the fast lane step aside: the bytes on the socket are TLS records, not HTTP.)
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import select
import selectors
import socket
import threading
import time
from email.utils import formatdate
from functools import partial
from typing import Any

import orjson
from gunicorn import SERVER
from gunicorn.config import PostRequest, PreRequest
from gunicorn.http import wsgi
from gunicorn.http.message import DEFAULT_MAX_HEADERFIELD_SIZE, MAX_HEADERS, _ip_in_allow_list
from gunicorn.workers.gthread import _DEFER, ThreadWorker

from pgmcp_http.protocol.errors import INVALID_REQUEST
from pgmcp_http.serving import fastlane
from pgmcp_http.web.http import BODY_TOO_LARGE
from pgmcp_http.web.mcp import rpc_error_body

__all__ = ["GuardedThreadWorker", "RequestBuffer"]

log = logging.getLogger(__name__)

BUSY_CODE = -32000
_DEFAULT_PRE_REQUEST = PreRequest.default
_DEFAULT_POST_REQUEST = PostRequest.default
# At most 18 digits: a longer value is no length this server would accept, and Python refuses to
# read a number of more than 4,300 digits; gunicorn's parser answers such a header.
_CONTENT_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*(\d{1,18})[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_CHUNKED = re.compile(rb"^transfer-encoding[ \t]*:.*chunked", re.IGNORECASE | re.MULTILINE)
_MAX_HEADER_BYTES = 64 * 1024
_CHUNKED_FRAMING_FACTOR = 8  # a chunked body of tiny chunks takes several bytes of framing per byte of data
KEEPALIVE_LINGER_MS = 2
"""How long a thread that just answered waits for the same client's next request before handing the
connection back to the event loop (only while no other request waits for a thread)."""


ACCEPT_STEP_ASIDE_MS = 5
"""How long a worker holding at least as many connections as threads stops listening, per connection it would
hold beyond its threads with the new one (a less loaded worker takes the connection meanwhile)."""
ACCEPT_STEP_ASIDE_MAX_MS = 20
"""The longest step aside: the most a new connection waits because of it."""
ACCEPT_WINDOW_MS = 100
"""After a step aside, how long the worker accepts as usual before it would step aside again."""


class RequestBuffer:
    """The bytes of one request received so far, and whether they make a whole request."""

    def __init__(self, *, body_limit: int) -> None:
        self.data = bytearray()
        self.started = time.monotonic()
        self.body_limit = body_limit

    @property
    def cap(self) -> int:
        """The most bytes worth gathering: headers at their limit, then a body just over the limit (a
        chunked one with its framing, at a few bytes per chunk)."""
        return _MAX_HEADER_BYTES + _CHUNKED_FRAMING_FACTOR * (self.body_limit + 1)

    def over_limit(self) -> bool:
        """A chunked body whose data is already over the limit, or more bytes than any acceptable request
        takes: refused by the worker itself (a chunked body's size is known only as it arrives, so the
        application, reading it, would wait on the socket for bytes it is going to refuse)."""
        if len(self.data) > self.cap:
            return True
        end = self.data.find(b"\r\n\r\n")
        if end < 0 or not _CHUNKED.search(bytes(self.data[:end + 2])):
            return False
        return _chunks_read(self.data, end + 4)[1] > self.body_limit

    def complete(self) -> bool:
        """True once headers and the body they announce have arrived, or once a Content-Length body is
        over the limit (the application answers 413 from the headers alone)."""
        end = self.data.find(b"\r\n\r\n")
        if end < 0:
            return len(self.data) > _MAX_HEADER_BYTES  # let gunicorn's parser refuse oversized headers
        headers = bytes(self.data[:end + 2])
        body = len(self.data) - end - 4
        if _CHUNKED.search(headers):
            return _chunks_read(self.data, end + 4)[0]
        if body > self.body_limit:
            return True
        match = _CONTENT_LENGTH.search(headers)
        wanted = int(match.group(1)) if match else 0
        return wanted > self.body_limit or body >= wanted


def _chunks_read(data: bytearray, position: int) -> tuple[bool, int]:
    """For a chunked body starting at ``position``: whether it has arrived up to its last chunk and
    trailers, and how many bytes of data the whole chunks so far hold.

    The framing is followed chunk by chunk (a chunk whose data happens to be
    ``0\\r\\n\\r\\n`` does not end the body); a malformed size line counts as
    complete so that the parser refuses it at once.
    """
    size_so_far = 0
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return False, size_so_far
        size_text = bytes(data[position:line_end]).split(b";", 1)[0].strip()
        if len(size_text) > 16:
            return True, size_so_far  # no chunk is that large: malformed
        try:
            size = int(size_text, 16)
        except ValueError:
            return True, size_so_far
        if size == 0:
            trailers = line_end + 2
            return data.startswith(b"\r\n", trailers) or data.find(b"\r\n\r\n", trailers) >= 0, size_so_far
        position = line_end + 2 + size + 2
        if position > len(data):
            return False, size_so_far + len(data) - (line_end + 2)  # this chunk's data so far included
        size_so_far += size


class FastLane:
    """Serves the requests :func:`fastlane.read` accepts on the worker thread that gathered them."""

    def __init__(self, worker: ThreadWorker) -> None:
        cfg = worker.cfg
        fields = cfg.limit_request_fields if 0 < cfg.limit_request_fields <= MAX_HEADERS else MAX_HEADERS
        field_size = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else DEFAULT_MAX_HEADERFIELD_SIZE
        self.limits = fastlane.Limits(line=cfg.limit_request_line, fields=fields, field_size=field_size,
                                      scheme_headers=frozenset(name.upper()
                                                               for name in worker.cfg.secure_scheme_headers))
        self._allowed = (worker.cfg.forwarded_allow_ips, worker.cfg.forwarded_allow_networks())
        self._date_second, self._date_text = -1, ""
        base = wsgi.base_environ(worker.cfg)
        base["wsgi.multithread"] = True
        self.base_environ = base

    @classmethod
    def for_worker(cls, worker: ThreadWorker) -> FastLane | None:
        """None where gunicorn's environ would differ from the lane's (a SCRIPT_NAME prefix, a Unix
        socket, the PROXY protocol, request hooks), where it applies no HTTP/1.1 (TLS, HTTP/2), or where
        gunicorn's own access log or statsd is configured (the lane writes neither)."""
        cfg = worker.cfg
        if (os.environ.get("SCRIPT_NAME") or cfg.is_ssl or cfg.proxy_protocol != "off" or cfg.accesslog
                or cfg.statsd_host
                or cfg.pre_request is not _DEFAULT_PRE_REQUEST or cfg.post_request is not _DEFAULT_POST_REQUEST
                or "h2" in (cfg.http_protocols or ())):
            return None
        return cls(worker)

    def _date(self) -> str:
        """The Date header, formatted once per second."""
        second = int(time.time())
        if second != self._date_second:
            self._date_text, self._date_second = formatdate(second, usegmt=True), second
        return self._date_text

    def _trusted(self, address: str) -> bool:
        """Whether gunicorn takes scheme headers from this client (forwarded_allow_ips)."""
        return bool(_ip_in_allow_list(address, *self._allowed))

    def read(self, conn: Any, data: bytearray) -> fastlane.SimpleRequest | None:
        """The gathered request, when it takes the lane (None: gunicorn's parser reads it)."""
        if not isinstance(conn.server, tuple) or not isinstance(conn.client, tuple):
            return None  # a Unix socket: gunicorn derives SERVER_NAME from Host then
        trusted = getattr(conn, "pgmcp_trusted", None)
        if trusted is None:  # once per connection
            trusted = conn.pgmcp_trusted = self._trusted(conn.client[0])
        return fastlane.read(data, self.limits, trusted_peer=trusted)

    def serve(self, worker: Any, conn: Any, simple: fastlane.SimpleRequest) -> bool:
        """Answer ``simple`` as gthread's handle_request would; True to keep the connection."""
        worker.nr += 1
        if worker.nr >= worker.max_requests and worker.alive:
            worker.log.info("Autorestarting worker after current request.")
            worker.alive = False
        keep_alive = (worker.alive and bool(worker.cfg.keepalive) and not simple.close
                      and len(worker.keepalived_conns) < worker.max_keepalived)
        environ = fastlane.environ_for(simple, self.base_environ, conn.sock, conn.client, conn.server)
        try:
            data, keep_alive = fastlane.answer(worker.wsgi, environ, keep_alive=keep_alive,
                                               server_software=SERVER, date=self._date())
            conn.sock.sendall(data)
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                worker.log.exception("Socket error processing request.")
            return False
        except Exception:
            worker.log.exception("Error handling request")
            with contextlib.suppress(OSError):  # what gunicorn answers then, before closing
                conn.sock.sendall(b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n"
                                  b"Content-Type: text/plain\r\nContent-Length: 21\r\n\r\nInternal Server Error")
            _drop(conn)
            return False
        return keep_alive


class GuardedThreadWorker(ThreadWorker):
    """gthread whose threads never wait on a slow client, with a bounded wait for a thread."""

    def init_process(self) -> None:
        app = self.app.wsgi()
        settings = app.extensions["pgmcp"].settings
        self._read_timeout_s = settings.request_read_timeout_ms / 1000
        self._queue_limit = settings.request_queue_limit
        self._body_limit = app.config.get("MAX_CONTENT_LENGTH") or 1_048_576
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._last_busy_log = 0.0
        self._fast_lane = FastLane.for_worker(self)
        self._share_accepts = self.cfg.workers > 1
        self._aside_until = 0.0  # monotonic time until which this worker does not accept
        super().init_process()

    def accept(self, listener: Any) -> None:
        """Take a new connection, unless this worker already holds as many as it has threads and has not
        stepped aside lately: then stop listening for a few milliseconds, so that a less loaded worker
        takes it (see 5. above)."""
        if self._share_accepts and self.nr_conns >= self.cfg.threads:
            now = time.monotonic()
            if now < self._aside_until:
                return  # already stepping aside (another listener's event in the same wake-up)
            if now > self._aside_until + ACCEPT_WINDOW_MS / 1000:
                beyond = self.nr_conns + 1 - self.cfg.threads
                self._aside_until = now + min(beyond * ACCEPT_STEP_ASIDE_MS, ACCEPT_STEP_ASIDE_MAX_MS) / 1000
                self.set_accept_enabled(False)
                return
        super().accept(listener)

    def set_accept_enabled(self, enabled: bool) -> None:
        if enabled and time.monotonic() < self._aside_until:
            return  # stepping aside: the event loop asks again after its next wake-up
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        aside = self._aside_until - time.monotonic()
        if aside > 0:  # wake up when the step aside ends, to listen again
            timeout = min(timeout, aside)
        super().wait_for_and_dispatch_events(timeout)

    def enqueue_req(self, conn: Any) -> None:
        with self._waiting_lock:
            full = self._waiting >= self._queue_limit
            if not full:
                self._waiting += 1
        if not full:
            super().enqueue_req(conn)
        elif not conn.data_ready and not conn.initialized:
            self._wait_for_data(conn)  # just accepted: answer once it has said something
        else:
            self._refuse_busy(conn)

    def _wait_for_data(self, conn: Any) -> None:
        """Park a connection on the event loop until it is readable (gthread's own deferral)."""
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))

    def handle(self, conn: Any) -> Any:
        with self._waiting_lock:
            self._waiting -= 1
        if self.cfg.is_ssl:
            return super().handle(conn)
        while True:
            state = self._gather(conn)
            if state is not True:
                return state
            simple: fastlane.SimpleRequest | None = conn.pgmcp_simple
            conn.pgmcp_simple = None
            keepalive = super().handle(conn) if simple is None else self._serve_simple(conn, simple)
            if keepalive is not True or not self._next_request_soon(conn):
                return keepalive

    def _serve_simple(self, conn: Any, simple: fastlane.SimpleRequest) -> bool:
        assert self._fast_lane is not None
        return self._fast_lane.serve(self, conn, simple)

    def _next_request_soon(self, conn: Any) -> bool:
        """Whether this thread should serve the connection's next request itself: nothing else waits for
        a thread here and the client's next bytes arrive within KEEPALIVE_LINGER.

        A client that sends its next request as soon as it has the answer (an agent's burst of calls,
        a load balancer's pooled connection) is then served with no trip through the event loop and
        the thread pool (a wake-up pipe, two epoll changes and a queue handoff per request). The
        wait is short and only for the first byte: a request that is not whole at once goes back to
        the event loop like any other (see :meth:`_gather`).
        """
        if not self.alive or self._waiting > 0 or conn.parser.unreader.buf.getvalue():
            return False  # pipelined bytes already buffered: gunicorn's own path handles them
        poller = select.poll()
        poller.register(conn.sock, select.POLLIN)
        return bool(poller.poll(KEEPALIVE_LINGER_MS)) and self._waiting == 0

    def _gather(self, conn: Any) -> Any:
        """Take what has arrived without blocking. True when the request is whole (then either the fast
        lane has read it, in ``conn.pgmcp_simple``, or gunicorn's parser has its bytes), _DEFER to wait for
        more on the event loop, False to drop the connection."""
        buffer: RequestBuffer | None = getattr(conn, "pgmcp_request", None)
        if buffer is None:
            buffer = conn.pgmcp_request = RequestBuffer(body_limit=self._body_limit)
            parser = getattr(conn, "parser", None)
            if parser is not None:  # pipelining: what the parser read past the last request comes first
                buffer.data += parser.unreader.take_buffered()
        try:
            while True:  # MSG_DONTWAIT: no switching the socket to non-blocking and back per request
                chunk = conn.sock.recv(65536, socket.MSG_DONTWAIT)
                if not chunk:
                    return False  # the client went away
                buffer.data += chunk
                if len(chunk) < 65536 or len(buffer.data) > buffer.cap:
                    break  # all there was, most likely (or more than enough); if the request is not whole,
                    # the event loop waits
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return _drop(conn)
        simple = self._fast_lane.read(conn, buffer.data) if self._fast_lane is not None else None
        if simple is None and buffer.over_limit():  # the lane takes no chunked body and nothing over its length
            return self._refuse_too_large(conn)
        if simple is not None or buffer.complete():
            conn.pgmcp_request = None
            if not conn.sock.getblocking():
                conn.sock.setblocking(True)
            conn.init()
            conn.pgmcp_simple = simple
            if simple is None:  # gunicorn's parser reads it
                conn.parser.unreader.unread(bytes(buffer.data))
            conn.data_ready = True
            return True
        if time.monotonic() - buffer.started > self._read_timeout_s:
            log.info("dropped a connection that did not send a whole request within REQUEST_READ_TIMEOUT "
                     "(%d bytes in %.1f s)", len(buffer.data), time.monotonic() - buffer.started)
            return _drop(conn)
        conn.data_ready = False  # wait on the event loop, not on this thread
        return _DEFER

    def _refuse_too_large(self, conn: Any) -> bool:
        """Answer 413 from the worker thread and close the connection (the rest of the body is not read)."""
        conn.pgmcp_request = None
        with contextlib.suppress(OSError):
            conn.sock.sendall(_error_response(b"413 Request Entity Too Large", INVALID_REQUEST, BODY_TOO_LARGE))
            conn.sock.shutdown(socket.SHUT_WR)
        return False

    def _refuse_busy(self, conn: Any) -> None:
        """Answer 503 at once from the event loop, without a thread, and close the connection."""
        message = (f"server busy: {self._queue_limit} requests are already waiting in this worker; retry in a "
                   "moment (the operator can add workers or replicas, or raise REQUEST_QUEUE_LIMIT)")
        response = _error_response(b"503 Service Unavailable", BUSY_CODE, message, b"Retry-After: 1\r\n")
        with contextlib.suppress(OSError):
            conn.sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while conn.sock.recv(65536):  # take the request already sent, so closing sends no reset
                    pass
            conn.sock.send(response)
            conn.sock.shutdown(socket.SHUT_WR)
        self.nr_conns -= 1
        conn.close()
        now = time.monotonic()
        if now - self._last_busy_log > 10:
            self._last_busy_log = now
            log.warning("answered 503 busy: more than REQUEST_QUEUE_LIMIT=%d requests were waiting for a thread",
                        self._queue_limit)


def _error_response(status: bytes, code: int, message: str, extra_headers: bytes = b"") -> bytes:
    """A whole HTTP response carrying a JSON-RPC error with id null, after which the connection closes."""
    body = orjson.dumps(rpc_error_body(code, message))
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n" + extra_headers
            + b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def _drop(conn: Any) -> bool:
    """Shut the connection down at once, from the worker thread: gunicorn's graceful close (which then
    finds nothing to wait for, and counts the connection once) would otherwise linger on the event
    loop reading whatever a slow client still sends."""
    with contextlib.suppress(OSError):
        conn.sock.shutdown(socket.SHUT_RDWR)
    return False
