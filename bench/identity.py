"""What "who is asking" costs on the ``tools/call`` hot path: a mapped role, the audit trail, tracing.

Starts its own PostgreSQL and one gunicorn worker per configuration, then
sends the same ``query`` call (``SELECT id FROM users WHERE id = $1``) one at
a time over a kept-alive connection, in interleaved rounds so that outside
load hits every configuration alike, and prints the median latency of each
and its ratio to the baseline (auth off: the anonymous caller adds no SQL; audit and tracing off).
Tracing exports to a local OTLP/HTTP sink that discards what it gets, every
span sampled. Figures depend on the machine: read the ratios.

Environment: BENCH_CALLS (per round and configuration, default 1500), BENCH_ROUNDS (default 3).
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import os
import shutil
import statistics
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness

CALLS = int(os.environ.get("BENCH_CALLS", "1500"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
TOKEN = "bench-token-" + "0123456789abcdef"


class _Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def otlp_sink() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def configurations(tokens: Path, named: Path, audit: Path, endpoint: str) -> dict[str, dict[str, str]]:
    plain = {"AUTH_TOKENS_FILE": str(tokens), "AUDIT_LOG": "off"}
    mapped = {"AUTH_TOKENS_FILE": str(named), "AUDIT_LOG": "off"}
    tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "1000"}
    return {
        "baseline: auth off, anonymous (no identity SQL)": {"AUDIT_LOG": "off"},
        "plain token (pgmcp.subject and claims set)": plain,
        "mapped role (+ SET LOCAL ROLE)": mapped,
        "mapped role + audit to a file": {**mapped, "AUDIT_LOG": str(audit)},
        "mapped role + tracing (every span exported)": {**mapped, **tracing},
        "mapped role + tracing, SQLCOMMENTER=false": {**mapped, **tracing, "SQLCOMMENTER": "false"},
        "all of it: role, audit, tracing": {**mapped, **tracing, "AUDIT_LOG": str(audit)},
    }


def measure(port: int, calls: int) -> list[float]:
    return harness.sequential_calls(port, calls, headers={"Authorization": f"Bearer {TOKEN}"})


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="pgmcp-bench-identity-"))
    try:
        run(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path) -> None:
    tokens, named, audit = folder / "tokens", folder / "callers.yaml", folder / "audit.jsonl"
    tokens.write_text(TOKEN + "\n")
    named.write_text(f"bench-agent: {{token: {TOKEN}, role: bench_reader}}\n")
    with harness.database() as db, otlp_sink() as endpoint:
        db.psql("CREATE ROLE bench_reader NOLOGIN; GRANT USAGE ON SCHEMA public TO bench_reader; "
                "GRANT SELECT ON ALL TABLES IN SCHEMA public TO bench_reader; GRANT bench_reader TO mcp_readonly;")
        configs = configurations(tokens, named, audit, endpoint)
        medians: dict[str, list[float]] = {name: [] for name in configs}
        servers = {}
        with contextlib.ExitStack() as stack:
            for name, env in configs.items():
                servers[name] = stack.enter_context(harness.server(db.readonly_url, workers=1, threads=4, env=env))
                measure(servers[name].port, 200)  # warm up: connections, guard memo, JIT-free caches
            for _ in range(ROUNDS):
                for name, running in servers.items():
                    try:
                        medians[name].append(statistics.median(measure(running.port, CALLS)))
                    except OSError as exc:
                        raise RuntimeError(f"{name}: {exc}; server log: {running.log.read_text()[-2000:]}") from exc
    harness.print_latencies(medians, rounds=ROUNDS, calls=CALLS)


if __name__ == "__main__":
    main()
