"""``make bench-profile``: where a worker's CPU goes during ``tools/call query`` at concurrency 8.

Starts its own PostgreSQL and the server with production settings (guard,
metrics, access log), drives it with wrk as ``make bench`` does, and samples
one worker with py-spy while it runs (``--gil``: only samples where Python
holds the GIL, so waiting on PostgreSQL or on a socket is not counted). Each
sample is charged to the innermost frame that belongs to a known component,
and the shares are printed, then the functions that hold the GIL longest: by
their own time (the innermost Python frame) and counting what they call. Prints
figures; asserts nothing; ``make bench-profile SAVE=1`` keeps them in
bench/results/<date>.md (the before/after tables of issue 24 are kept that way).

Environment: BENCH_SECONDS (default 10), BENCH_WORKERS / BENCH_THREADS (default: the
server's own layout), BENCH_LABEL (a word for the kept heading, e.g. "before").
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import harness
import workload
from run import THREADS, WORKERS, drive

RATE = 500  # samples per second
COMPONENTS = (
    ("database access (pool, transaction, rows; psycopg2 inside it)", r"pgmcp_http/db/"),
    ("gunicorn (event loop, HTTP parsing, WSGI environ, socket writes)", r"gunicorn/"),
    ("web layer and worker (checks, /mcp endpoint, access line, fast lane, slow-loris guard)",
     r"pgmcp_http/web/|pgmcp_http/serving/"),
    ("protocol (JSON-RPC, envelope, MCP wire validation and shapes)", r"pgmcp_http/protocol/|mcp_types|pydantic"),
    ("tools (arguments, query tool, result shaping)", r"pgmcp_http/tools/|jsonschema"),
    ("SQL guard", r"pgmcp_http/sqlguard/|pglast"),
    ("observability (metrics files, audit line)", r"pgmcp_http/observability/|prometheus_client"),
    ("thread pool handoffs (futures, selectors, locks)", r"concurrent/|threading\.py|selectors\.py|queue\.py"),
    ("Flask and Werkzeug", r"/flask/|/werkzeug/"),
    ("logging", r"logging/"),
)


def stacks(raw: Path) -> Iterator[tuple[list[str], int]]:
    """Each stack of py-spy's raw output (its frames, outermost first, without the thread) and its samples."""
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if number.isdigit():
            yield stack.split(";")[1:], int(number)


def shares(raw: Path) -> tuple[int, list[tuple[str, float]]]:
    """Samples per component (the innermost matching frame wins) from py-spy's raw output."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, samples in stacks(raw):
        total += samples
        label = "other (stdlib, C code outside the above)"
        for frame in reversed(frames):
            match = next((name for name, pattern in COMPONENTS if re.search(pattern, frame)), None)
            if match is not None:
                label = match
                break
        counts[label] += samples
    return total, [(name, 100 * value / max(total, 1)) for name, value in counts.most_common()]


TOP = 15


def _function(frame: str) -> str:
    """``name (path/file.py:line)`` from py-spy's frame text, with the path cut at its package."""
    name, _, where = frame.partition(" (")
    where = re.sub(r"^.*/(site-packages|lib/python3\.\d+|pgmcp_http)/", lambda m: (
        "pgmcp_http/" if m.group(1) == "pgmcp_http" else ""), where.rstrip(")"))
    where = re.sub(r":\d+$", "", where)
    return f"{name} ({where})"


def functions(raw: Path) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The top functions by their own samples and by samples they are on the stack for (each function
    counted once per stack), as shares of every sample holding the GIL."""
    own: collections.Counter[str] = collections.Counter()
    within: collections.Counter[str] = collections.Counter()
    total = 0
    for stack, samples in stacks(raw):
        total += samples
        frames = [_function(frame) for frame in stack]
        if frames:
            own[frames[-1]] += samples
        for name in set(frames):
            if "pgmcp_http/" in name:
                within[name] += samples
    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, 100 * value / max(total, 1)) for name, value in counter.most_common(TOP)]
    return share(own), share(within)


def main() -> None:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy not found: `make bench-profile` installs it into .venv")
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    raw = Path(tempfile.mkstemp(prefix="pgmcp-profile-", suffix=".txt")[1])
    with harness.database() as db:
        workload.prepare_pgbench(db)
        with harness.server(db.readonly_url, workers=WORKERS, threads=THREADS, env={"LOG_LEVEL": "info"},
                            ready_path="/readyz") as srv:
            harness.call_tool(srv.port, "query", {"sql": "SELECT 1"})
            worker = srv.worker_pids()[0]
            sampler = subprocess.Popen([spy, "record", "-p", str(worker), "-r", str(RATE), "-d", str(int(seconds)),
                                        "-f", "raw", "-o", str(raw), "--gil", "--nonblocking"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            result = drive(srv.port, "profiled", 8, workload.modern_call())
            sampler.wait()
    total, table = shares(raw)
    own, within = functions(raw)
    raw.unlink(missing_ok=True)
    lines = [f"tools/call query (2026-07-28), wrk c=8: {result.rate:,.0f} calls/s while sampled, "
             f"{result.cpu_us or 0:,.0f} us of server CPU per call; worker {worker}, {total} samples holding the GIL",
             "", "| share | component |", "|---:|---|"]
    lines += [f"| {share:.1f}% | {name} |" for name, share in table]
    lines += ["", "| own time | function (innermost Python frame) |", "|---:|---|"]
    lines += [f"| {share:.1f}% | `{name}` |" for name, share in own]
    lines += ["", "| on the stack | this server's function (with what it calls) |", "|---:|---|"]
    lines += [f"| {share:.1f}% | `{name}` |" for name, share in within]
    text = "\n".join(lines)
    print(text)
    label = os.environ.get("BENCH_LABEL", "")
    harness.save_result(f"Profile{' ' + label if label else ''} (bench/hotpath.py)",
                        harness.describe_machine("one worker sampled by py-spy --gil at "
                                                 f"{RATE} Hz while wrk drives the server") + "\n\n" + text)


if __name__ == "__main__":
    main()
