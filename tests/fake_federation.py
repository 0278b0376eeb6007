"""A stand-in for the TAS federation's management API, as strict as its Go handlers.

It answers ``POST /api/v1/federation/servers`` (201; 400 "already registered"
for a known id; 400 "Invalid JSON" when the body would not decode into the Go
``MCPServer`` struct, e.g. a string where a duration's integer nanoseconds
belong), ``GET`` and ``DELETE`` of ``/api/v1/federation/servers/{id}``, and
records every request so tests can count them.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeFederation", "go_decodes"]

PREFIX = "/api/v1/federation/servers"
_STRING_FIELDS = ("id", "name", "description", "version", "category", "endpoint", "protocol")


def go_decodes(body: Any) -> bool:
    """Would ``json.NewDecoder(r.Body).Decode(&server)`` accept this body? (types only, as Go checks them)"""
    if not isinstance(body, dict):
        return False
    if any(key in body and not isinstance(body[key], str) for key in _STRING_FIELDS):
        return False
    auth = body.get("auth", {})
    if not isinstance(auth, dict) or not isinstance(auth.get("type", ""), str):
        return False
    if not all(isinstance(v, str) for v in (auth.get("config") or {}).values()):
        return False
    for key in ("capabilities", "tags"):
        if not all(isinstance(v, str) for v in body.get(key) or []):
            return False
    if not all(isinstance(v, str) for v in (body.get("metadata") or {}).values()):
        return False
    check = body.get("health_check", {})
    if not isinstance(check, dict) or not isinstance(check.get("enabled", False), bool):
        return False
    for key in ("interval", "timeout", "healthy_threshold", "unhealthy_threshold"):  # Go int64 / int
        if key in check and (not isinstance(check[key], int) or isinstance(check[key], bool)):
            return False
    return isinstance(check.get("path", ""), str)


@dataclass
class FakeFederation:
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None

    def start(self, port: int = 0) -> int:
        federation = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _reply(self, status: int, body: Any) -> None:
                data = (json.dumps(body) if not isinstance(body, str) else body + "\n").encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if not isinstance(body, str) else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                federation.requests.append(("POST", self.path, body))
                if self.path != PREFIX or not go_decodes(body):
                    self._reply(400, "Invalid JSON")
                elif not body.get("id"):
                    self._reply(400, "server ID cannot be empty")
                elif body["id"] in federation.servers:
                    self._reply(400, f"server with ID {body['id']} already registered")
                else:
                    federation.servers[body["id"]] = {**body, "status": "unknown", "created_at": "2026-11-25T00:00:00Z"}
                    self._reply(201, {"message": "Server registered successfully", "server_id": body["id"]})

            def do_GET(self) -> None:
                federation.requests.append(("GET", self.path, None))
                found = federation.servers.get(self.path.removeprefix(PREFIX + "/"))
                if found is None:
                    self._reply(404, f"server with ID {self.path.rsplit('/', 1)[-1]} not found")
                else:
                    self._reply(200, found)

            def do_DELETE(self) -> None:
                federation.requests.append(("DELETE", self.path, None))
                if federation.servers.pop(self.path.removeprefix(PREFIX + "/"), None) is None:
                    self._reply(404, "not found")
                else:
                    self._reply(200, {"message": "Server unregistered successfully"})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def posts(self) -> list[Any]:
        return [body for method, _, body in self.requests if method == "POST"]

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
