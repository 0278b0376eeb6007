"""The common MCP request, read and answered without gunicorn's HTTP machinery.

Nearly every request this server gets is the same shape: ``POST /mcp
HTTP/1.1`` with a handful of plain headers and a small JSON body announced by
Content-Length. The worker (:mod:`pgmcp_http.serving.worker`) has already
gathered such a request whole before any thread touches it, so building the
WSGI environ from those bytes and writing the answer in one ``send`` costs a
fraction of gunicorn's general parser, its request and response objects and
its two writes per response (a third of the server's CPU per call before).

Only requests that are plainly that shape take this lane: :func:`read`
declines (returns None) anything else (another method or path, a query
string, HTTP/1.0, bytes outside printable ASCII, a header name that is not a
token or holds ``_``, a header sent twice, folded lines, Transfer-Encoding,
Expect, Upgrade, a scheme header from a trusted proxy, no Content-Length, a
body not fully there, pipelined bytes after it, more headers or longer lines
than gunicorn's limits allow), and
gunicorn's own parser then reads it with all its checks and error answers.
The environ holds what gunicorn's would for such a request.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

__all__ = ["Limits", "SimpleRequest", "answer", "read"]

PATH = "/mcp"
_REQUEST_LINE = b"POST /mcp HTTP/1.1\r\n"
_TOKEN = re.compile(r"[!#$%&'*+\-.^`|~0-9A-Za-z]+")
_PRINTABLE = re.compile(r"[\x20-\x7e\t]*")
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t\x80-\xff]*")
_DECLINED_HEADERS = frozenset({"TRANSFER-ENCODING", "EXPECT", "UPGRADE", "HTTP2-SETTINGS", "TE"})
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                         "trailers", "transfer-encoding", "upgrade"})


@dataclass(frozen=True)
class Limits:
    """gunicorn's request limits (limit_request_line, limit_request_fields, limit_request_field_size)
    and the header names that carry the scheme from a trusted proxy (secure_scheme_headers)."""

    line: int
    fields: int
    field_size: int
    scheme_headers: frozenset[str]


@dataclass(slots=True)
class SimpleRequest:
    """A whole ``POST /mcp`` request read from the buffer."""

    headers: list[tuple[str, str]]  # names upper-cased, as gunicorn gives them
    body: bytes
    close: bool  # the client asked to close the connection after the answer


def read(data: bytes | bytearray, limits: Limits, *, trusted_peer: bool) -> SimpleRequest | None:
    """The request in ``data`` when it is exactly one plain ``POST /mcp`` with its whole body, else None.

    ``trusted_peer``: the client is in gunicorn's ``forwarded_allow_ips``, so a scheme header from it
    would change the environ's ``wsgi.url_scheme`` (the lane leaves that to gunicorn).
    """
    end = data.find(b"\r\n\r\n")
    if end < 0 or not data.startswith(_REQUEST_LINE) or 0 < limits.line < len(_REQUEST_LINE):
        return None
    try:
        lines = data[:end].decode("ascii").split("\r\n")
    except UnicodeDecodeError:
        return None
    # str.isprintable() is exactly \x20-\x7e on ASCII text; a line with a tab takes the pattern
    if not all(line.isprintable() or _PRINTABLE.fullmatch(line) for line in lines):
        return None
    if len(lines) - 1 > limits.fields or any(len(line) + 2 > limits.field_size for line in lines[1:]):
        return None
    headers: list[tuple[str, str]] = []
    length: int | None = None
    close = False
    seen: set[str] = set()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _token(name) or "_" in name:
            return None  # folded or malformed line, or a name gunicorn drops or refuses
        name = name.upper()
        value = value.strip(" \t")
        if name in _DECLINED_HEADERS or (trusted_peer and name in limits.scheme_headers) or name in seen:
            return None  # a repeated field is refused (Host) or joined by gunicorn: its parser decides
        seen.add(name)
        if name == "CONTENT-LENGTH":
            if not value.isdigit() or len(value) > 18:
                return None  # gunicorn answers a length no server would take
            length = int(value)
        elif name == "CONNECTION":
            tokens = {token.strip().lower() for token in value.split(",")}
            if not tokens <= {"keep-alive", "close"}:
                return None
            close = close or "close" in tokens
        headers.append((name, value))
    body_start = end + 4
    if length is None or len(data) - body_start != length:
        return None  # no length, a body still on its way, or pipelined bytes after it
    return SimpleRequest(headers=headers, body=bytes(data[body_start:]), close=close)


StartResponse = Callable[..., Any]


@functools.lru_cache(maxsize=256)  # a few dozen header names come back on every request
def _token(name: str) -> bool:
    """Whether ``name`` is an HTTP token (a valid header name)."""
    return _TOKEN.fullmatch(name) is not None


def environ_for(request: SimpleRequest, base: dict[str, Any], sock: Any, client: Any,
                server: tuple[str, int]) -> dict[str, Any]:
    """The WSGI environ gunicorn would build for ``request`` (see gunicorn/http/wsgi.py ``create``)."""
    environ = dict(base)
    environ.update({
        "wsgi.input": io.BytesIO(request.body),
        "gunicorn.socket": sock,
        "REQUEST_METHOD": "POST",
        "QUERY_STRING": "",
        "RAW_URI": PATH,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "PATH_INFO": PATH,
        "SCRIPT_NAME": "",
    })
    if isinstance(client, tuple):
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
    else:
        environ["REMOTE_ADDR"] = str(client)
    for name, value in request.headers:
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = value
            continue
        environ["HTTP_" + name.replace("-", "_")] = value
    return environ


class _Start:
    """``start_response`` that only records what the application says."""

    __slots__ = ("headers", "status")

    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        self.status, self.headers = status, headers
        return _no_write


def _no_write(data: bytes) -> None:
    raise RuntimeError("the /mcp fast lane does not support write(); return the body instead")


def answer(app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]], environ: dict[str, Any], *,
           keep_alive: bool, server_software: str, date: str | None = None) -> tuple[bytes, bool]:
    """Run ``app`` and return the whole response (status line, headers, body) and whether the connection
    stays open."""
    start = _Start()
    result = app(environ, start)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    lines = [f"HTTP/1.1 {start.status}", f"Server: {server_software}", f"Date: {date or formatdate(usegmt=True)}",
             f"Connection: {'keep-alive' if keep_alive else 'close'}"]
    has_length = False
    for name, value in start.headers:
        if not _token(name) or not ((value.isascii() and value.isprintable()) or _HEADER_VALUE.fullmatch(value)):
            raise ValueError(f"invalid response header {name!r}")  # as gunicorn refuses it
        lowered = name.lower()
        if lowered in _HOP_BY_HOP:
            continue
        if lowered == "content-length":
            has_length = True
            value = str(len(body))
        lines.append(f"{name}: {value}")
    if not has_length:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body, keep_alive
