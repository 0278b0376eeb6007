"""``make bench-instructions``: machine instructions one ``tools/call query`` costs this server, in process.

CPU time per call moves by 10-15% between identical runs on a shared machine,
and this one has no hardware counters, so small changes to the hot path cannot
be told apart by timing. Instructions can: this script runs itself under
valgrind's callgrind, serves the same call (pgbench's primary-key SELECT, the
2026-07-28 envelope, production settings: guard, metrics in multiprocess mode,
access line, audit line) through the WSGI app many times on one thread, and
counts the instructions of that thread between two markers (callgrind dumps
its counters each time the process calls ``getppid()``, which nothing else on
this path does). Another request is held in flight meanwhile, as under load,
so held metric writes are made by the flusher, not at every call's end. The
deferred rollback is set to 1 s so that whether a read folds its ROLLBACK in
does not depend on how slowly valgrind runs. PostgreSQL, the kernel and the
HTTP worker are not counted: see ``make bench-profile`` and ``make bench-peers``
for those. The count is the same from run to run within 0.1%. Prints figures;
asserts nothing; ``SAVE=1`` keeps them in bench/results/<date>.md.

Environment: BENCH_CALLS (measured calls, default 400).
"""

from __future__ import annotations

import glob
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any

import harness
import workload

CALLS = int(os.environ.get("BENCH_CALLS", "400"))
WARM_UP = 300
CHILD = "PGMCP_INSTRUCTIONS_CHILD"


def serve_calls(workdir: str) -> None:
    """In the process valgrind runs: warm up, then the measured calls between two markers."""
    with harness.database() as db:
        workload.prepare_pgbench(db)
        metrics_dir = os.path.join(workdir, "metrics")
        os.mkdir(metrics_dir)
        os.environ.update({"DATABASE_URL": db.readonly_url, "LOG_LEVEL": "info", "ROLLBACK_DELAY_MS": "1000",
                           "AUDIT_LOG": os.path.join(workdir, "audit.jsonl"), "PROMETHEUS_MULTIPROC_DIR": metrics_dir})
        log = open(os.path.join(workdir, "server.log"), "w")  # noqa: SIM115 - the access lines go here
        os.dup2(log.fileno(), 2)
        from pgmcp_http.app import create_app
        from pgmcp_http.config import load_settings

        app = create_app(load_settings(dict(os.environ)), configure_logs=True)
        body, headers = workload.modern_call()
        environ_headers = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()
                           if name.lower() != "content-type"}

        def call(number: int) -> None:
            data = body.replace("{KEY}", str(number % 1000 + 1)).encode()
            environ: dict[str, Any] = {
                "REQUEST_METHOD": "POST", "PATH_INFO": "/mcp", "SCRIPT_NAME": "", "QUERY_STRING": "",
                "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "3401", "SERVER_PROTOCOL": "HTTP/1.1",
                "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(data), "CONTENT_LENGTH": str(len(data)),
                "CONTENT_TYPE": "application/json", "REMOTE_ADDR": "127.0.0.1", "wsgi.errors": sys.stderr,
                "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False, **environ_headers}
            status: list[str] = []
            b"".join(app(environ, lambda line, *_: status.append(line)))
            if not status or not status[0].startswith("200"):
                raise SystemExit(f"the call failed: {status}")

        for number in range(WARM_UP):
            call(number)
        app.extensions["pgmcp"].metrics.batch.hold()  # another request in flight, as under load
        os.getppid()
        for number in range(CALLS):
            call(number)
        os.getppid()


def main() -> None:
    if os.environ.get(CHILD):
        serve_calls(os.environ[CHILD])
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    workdir = tempfile.mkdtemp(prefix="pgmcp-instructions-")
    try:
        out = os.path.join(workdir, "callgrind.out")
        subprocess.run(["valgrind", "--tool=callgrind", "--dump-before=getppid", "--separate-threads=yes",
                        "--dump-instr=no", "--dump-line=no", f"--callgrind-out-file={out}",
                        sys.executable, __file__], env={**os.environ, CHILD: workdir}, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        measured = _measured_part(out)
        line = (f"tools/call query (2026-07-28), in process, one thread, production settings: "
                f"{measured / CALLS / 1000:,.1f}k instructions per call ({CALLS} calls, callgrind)")
        print(line)
        harness.save_result("Instructions per call (bench/instructions.py)",
                            f"{harness.describe_machine('valgrind, one thread')}\n\n{line}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _measured_part(out: str) -> int:
    """The main thread's instructions between the two markers: its second dump."""
    parts = {int(re.search(r"\.(\d+)-01$", path).group(1)): path for path in glob.glob(f"{out}.*-01")}
    with open(parts[2]) as dump:
        for line in dump:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit("callgrind wrote no totals")


if __name__ == "__main__":
    main()
