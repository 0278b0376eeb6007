"""The three calls of the federation's management API that registration needs, over urllib.

``GET``, ``POST`` and ``DELETE`` on ``/api/v1/federation/servers[/{id}]``. The
federation answers a duplicate ``POST`` with 400 "already registered" and has
no update call, which is why :class:`~pgmcp_http.federation.registrar.Registrar`
reads before it writes.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["FederationClient", "FederationError"]

SERVERS_PATH = "/api/v1/federation/servers"


class FederationError(Exception):
    """The federation could not be reached or refused a call; the message says which and why."""


class FederationClient:
    """JSON over HTTP to one federation, each call bounded by ``timeout_s``."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _url(self, server_id: str | None = None) -> str:
        if server_id is None:
            return self.base_url + SERVERS_PATH
        return f"{self.base_url}{SERVERS_PATH}/{urllib.parse.quote(server_id, safe='')}"

    def _send(self, method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # http(s) only: checked in config
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FederationError(f"cannot reach the federation at {self.base_url} ({reason}); check FEDERATION_URL "
                                  "and that the federation is running") from None

    def get_server(self, server_id: str) -> dict[str, Any] | None:
        """The federation's record for ``server_id``, or None when it has none."""
        status, payload = self._send("GET", self._url(server_id))
        if status == 404:
            return None
        if status != 200:
            raise FederationError(f"GET {self._url(server_id)} answered {status}: {_preview(payload)}")
        try:
            found = json.loads(payload)
        except ValueError:
            raise FederationError(f"GET {self._url(server_id)} answered 200 with a body that is not JSON") from None
        return found if isinstance(found, dict) else None

    def register(self, body: dict[str, Any]) -> tuple[int, str]:
        """POST the registration; returns the status and the body's first bytes (the caller decides)."""
        status, payload = self._send("POST", self._url(), body)
        return status, _preview(payload)

    def unregister(self, server_id: str) -> None:
        """DELETE the record (a 404 means someone else already did)."""
        status, payload = self._send("DELETE", self._url(server_id))
        if status not in (200, 204, 404):
            raise FederationError(f"DELETE {self._url(server_id)} answered {status}: {_preview(payload)}")


def _preview(payload: bytes) -> str:
    return payload[:200].decode("utf-8", "replace").strip()
