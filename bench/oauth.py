"""What checking a caller's credential costs per call: a static token, a JWT_KEY_FILE JWT, an OAuth access token.

In process, the gate alone (``Gate.admit`` on a request's headers, as ``POST /mcp`` calls it), after the
issuer's key set has been fetched once: the per-call figure of OAuth is RS256 signature verification plus
the claim checks, never a network round trip. The key set is served on loopback by a small HTTP server
here, with the discovery document pointing at it, so the first call goes through the real fetch path.
Prints microseconds per admission (median of ROUNDS rounds of CALLS calls each).

Environment: BENCH_CALLS (default 3000), BENCH_ROUNDS (default 5), BENCH_NEW_TOKENS (tokens signed
beforehand for the first-sight case, per round; default 300: signing is slower than verifying).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import harness  # noqa: F401  (puts the repository on sys.path, as for every benchmark)
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pgmcp_http.auth.gate import Admission, Gate, build_gate
from pgmcp_http.config import load_settings
from pgmcp_http.identity import RolePolicy

CALLS = int(os.environ.get("BENCH_CALLS", "3000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
NEW_TOKENS = int(os.environ.get("BENCH_NEW_TOKENS", "300"))
STATIC_TOKEN = "bench-static-token-0123456789abcdef"
RESOURCE = "http://127.0.0.1:3401/mcp"


def serve_issuer(public_jwk: dict[str, Any]) -> tuple[ThreadingHTTPServer, str]:
    """A loopback issuer: its discovery document and its key set."""
    documents: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = documents.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body or {}).encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    issuer = f"http://127.0.0.1:{server.server_address[1]}"
    documents["/.well-known/oauth-authorization-server"] = {"issuer": issuer, "jwks_uri": f"{issuer}/jwks"}
    documents["/jwks"] = {"keys": [public_jwk]}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, issuer


def time_admissions(gate: Gate, make_headers: Callable[[], Mapping[str, str]], calls: int = CALLS) -> float:
    """Median microseconds per ``gate.admit(headers)`` over ROUNDS rounds of ``calls`` headers made beforehand."""
    per_call = []
    for _ in range(ROUNDS):
        requests = [make_headers() for _ in range(calls)]
        assert isinstance(gate.admit(requests[0]), Admission), "the credential must be accepted"
        started = time.perf_counter()
        for headers in requests[1:]:
            gate.admit(headers)
        per_call.append((time.perf_counter() - started) / (calls - 1) * 1e6)
    return statistics.median(per_call)


def main() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    public_jwk.update(kid="bench-1", alg="RS256", use="sig")
    server, issuer = serve_issuer(public_jwk)
    workdir = Path(tempfile.mkdtemp(prefix="pgmcp-bench-oauth-"))
    pem = workdir / "key.pem"
    pem.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    settings = load_settings({"DATABASE_URL": "postgresql://bench@127.0.0.1/bench", "AUTH_TOKENS": STATIC_TOKEN,
                              "JWT_KEY_FILE": str(pem), "JWT_AUDIENCE": RESOURCE,
                              "OAUTH_RESOURCE": RESOURCE, "OAUTH_ISSUERS": issuer})
    gate = build_gate(settings, RolePolicy(), ["query", "list_tables"])
    now = int(time.time())
    claims = {"iss": issuer, "sub": "alice", "aud": RESOURCE, "client_id": "bench", "scope": "db.schema db.read",
              "iat": now, "exp": now + 3600, "jti": uuid.uuid4().hex}
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())

    def access_token() -> str:
        return jwt.encode({**claims, "jti": uuid.uuid4().hex}, private, algorithm="RS256",
                          headers={"kid": "bench-1", "typ": "at+jwt"})

    same = access_token()
    keyfile_token = jwt.encode({**claims, "iss": "keyfile"}, private, algorithm="RS256")
    cases: dict[str, Callable[[], float]] = {
        "static token (AUTH_TOKENS)": lambda: time_admissions(
            gate, lambda: {"Authorization": f"Bearer {STATIC_TOKEN}"}),
        "JWT under JWT_KEY_FILE (RS256)": lambda: time_admissions(
            gate, lambda: {"Authorization": f"Bearer {keyfile_token}"}),
        "OAuth token, first sight (RS256 verified)": lambda: time_admissions(
            gate, lambda: {"Authorization": f"Bearer {access_token()}"}, NEW_TOKENS),
        "OAuth token, seen before (memo)": lambda: time_admissions(
            gate, lambda: {"Authorization": f"Bearer {same}"}),
    }
    print(f"Credential check per call (Gate.admit), median of {ROUNDS} rounds x {CALLS} calls, one thread")
    print(f"{'credential':<46} {'µs per call':>12}")
    for name, run in cases.items():
        print(f"{name:<46} {run():>12.1f}")
    server.shutdown()


if __name__ == "__main__":
    main()
