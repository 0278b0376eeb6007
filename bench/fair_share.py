"""Fair share per caller under load: do two steady callers keep their latency while a third floods?

Starts its own PostgreSQL (pgbench's tables at scale 1) and three servers with three named token
callers, each one worker with more threads than connections (THREADS=8, MAX_CONNECTIONS=4), so that
one caller's burst can hold every connection: one server with the fair share as it comes
(``CALLER_MAX_CONCURRENT`` unset: the pool less one, 3), one with a cap of 2 (half the pool), one
with ``CALLER_MAX_CONCURRENT=off``.

In each phase ``alice`` and ``bob`` send mixed calls on one kept-alive connection each, for
BENCH_SECONDS: a key lookup over MCP, a range aggregate over REST, a report over REST (a statement that
holds its connection for ``pg_sleep(0.05)``: the database's own time, which a 2-core machine shared
with the server cannot otherwise give without starving the server of CPU), ``describe_table`` over MCP,
``list_tables`` over REST, a ``resources/read``. In the flood phases ``flood`` sends the same mix on six
more connections (c=8 in all), from just before to just after their window, its next call as soon as
an answer arrives: either waiting as told after a busy answer (it honours ``Retry-After``) or not at
all (it ignores it: the worst case, where refusals cost the server CPU). Every caller is a process of
its own, so no client-side lock mixes their timings. Phases are interleaved per round, and each ratio
is the median of the rounds' own ratios, so outside load on the machine hits both sides of a pair alike.

Prints the table; BENCH_SAVE=1 also appends it to bench/results/<date>.md.
Environment: BENCH_SECONDS (per phase, default 15), BENCH_ROUNDS (default 3), BENCH_FLOOD (the
flooder's connections, default 6), BENCH_REPORT_SECONDS (the report's sleep, default 0.05).
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import json
import multiprocessing
import os
import re
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
import workload

SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
FLOOD = int(os.environ.get("BENCH_FLOOD", "6"))
STEADY = ("alice", "bob")
TOKENS = {"alice": "bench-alice-" + "0123456789abcdef", "bob": "bench-bob-" + "0123456789abcdef",
          "flood": "bench-flood-" + "0123456789abcdef"}
LAYOUT = {"THREADS": "8", "MAX_CONNECTIONS": "4", "AUDIT_LOG": "off", "LOG_LEVEL": "warning"}
SERVERS = {"fair share on (cap 3, the default)": {}, "cap 2 (half the pool)": {"CALLER_MAX_CONCURRENT": "2"},
           "fair share off": {"CALLER_MAX_CONCURRENT": "off"}}
RETRY = re.compile(r"retry after (\d+) s")
KINDS = ("lookup", "range", "report", "describe", "list", "read")
REPORT_S = float(os.environ.get("BENCH_REPORT_SECONDS", "0.05"))
FLOODS = {"none": None, "honours Retry-After": True, "ignores Retry-After": False}
META = {"io.modelcontextprotocol/protocolVersion": workload.MODERN, "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"}}


# -- one caller's client -----------------------------------------------------------------------------

def _mcp(method: str, params: dict[str, Any], name: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    headers = {"Content-Type": "application/json", "Accept": "application/json", "MCP-Protocol-Version":
               workload.MODERN, "Mcp-Method": method, "Mcp-Name": name}
    return "/mcp", {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": META}}, headers


def _rest(name: str, arguments: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, str]]:
    return "/mcp/tools/call", {"name": name, "arguments": arguments}, {"Content-Type": "application/json"}


def mixed_call(number: int) -> tuple[str, str, dict[str, Any], dict[str, str]]:
    """The ``number``-th call of the mix: (kind, path, body, headers)."""
    key = number * 7919 % workload.KEYS + 1
    kind = KINDS[number % len(KINDS)]
    if kind == "lookup":
        return kind, *_mcp("tools/call", {"name": "query", "arguments": {"sql": workload.SQL, "params": [key]}},
                           "query")
    if kind == "range":
        sql = ("SELECT count(*) AS n, sum(abalance) AS total FROM pgbench_accounts "
               "WHERE aid BETWEEN $1 AND $1 + 5000")
        return kind, *_rest("query", {"sql": sql, "params": [key]})
    if kind == "describe":
        return kind, *_mcp("tools/call", {"name": "describe_table", "arguments": {"table_name": "pgbench_accounts"}},
                           "describe_table")
    if kind == "list":
        return kind, *_rest("list_tables", {})
    if kind == "report":  # a statement that holds its connection on the database's time, not this machine's CPU
        return kind, *_rest("query", {"sql": f"SELECT pg_sleep({REPORT_S}) AS slept, $1::int AS key", "params": [key]})
    uri = "postgres://table/public/pgbench_branches"
    return kind, *_mcp("resources/read", {"uri": uri}, uri)


def classify(path: str, status: int, data: bytes) -> tuple[str, float]:
    """ok, busy (over the fair share: 429, or an MCP answer starting "busy:") or error; and for busy, the
    seconds it says to wait (the REST body carries the same words as the Retry-After header)."""
    if path != "/mcp":
        if status == 200 and b'"isError":false' in data:
            return "ok", 0.0
        text = json.loads(data).get("error", "") if status == 429 else ""
    elif status != 200:
        return "error", 0.0
    else:
        reply = json.loads(data)
        result, error = reply.get("result"), reply.get("error")
        if result is not None and not result.get("isError", False):
            return "ok", 0.0
        text = result["content"][0]["text"] if result is not None else error.get("message", "")
    match = RETRY.search(text) if text.startswith("busy:") else None
    return ("busy", float(match.group(1))) if match else ("error", 0.0)


def _connection_loop(port: int, token: str, offset: int, start: float, stop: float, polite: bool,
                     samples: list[tuple[str, str, float]]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    number = offset
    while time.time() < start:
        time.sleep(0.001)
    while time.time() < stop:
        kind, path, body, headers = mixed_call(number)
        number += 1
        payload = json.dumps(body)
        began = time.perf_counter()
        try:
            conn.request("POST", path, body=payload, headers={**headers, "Authorization": f"Bearer {token}"})
            reply = conn.getresponse()
            data = reply.read()
            outcome, wait = classify(path, reply.status, data)
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            outcome, wait = "error", 0.0
        samples.append((kind, outcome, time.perf_counter() - began))
        if polite and wait:
            time.sleep(min(wait, max(0.0, stop - time.time())))
    conn.close()


def run_caller(caller: str, port: int, connections: int, start: float, stop: float, polite: bool,
               out: Any) -> None:
    """One caller in a process of its own: ``connections`` kept-alive connections from ``start`` to ``stop``
    (wall clock), waiting as told after a busy answer when ``polite``; puts (caller, samples) on ``out``, each
    sample (kind, outcome, seconds)."""
    samples: list[tuple[str, str, float]] = []
    threads = [threading.Thread(target=_connection_loop,
                                args=(port, TOKENS[caller], offset * 3, start, stop, polite, samples))
               for offset in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put((caller, samples))


# -- phases -------------------------------------------------------------------------------------------

@dataclass
class Phase:
    """What each caller saw in one phase; ``flood`` is a key of FLOODS."""

    server: str
    flood: str
    seconds: float
    samples: dict[str, list[tuple[str, str, float]]] = field(default_factory=dict)

    def latencies(self, callers: tuple[str, ...], outcome: str = "ok", *, quick: bool = False) -> list[float]:
        """Seconds of ``callers``' answers with ``outcome``; ``quick``: without the report calls."""
        return [seconds for caller in callers for kind, seen, seconds in self.samples.get(caller, [])
                if seen == outcome and not (quick and kind == "report")]

    def count(self, caller: str, outcome: str) -> int:
        return sum(1 for _, seen, _ in self.samples.get(caller, []) if seen == outcome)


def run_phase(port: int, server: str, *, flood: str, seconds: float) -> Phase:
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    start = time.time() + 1.0
    stop = start + seconds
    plan = [(caller, 1, start, stop, True) for caller in STEADY]
    polite = FLOODS[flood]
    if polite is not None:  # from just before the steady callers start to just after they stop
        plan.append(("flood", FLOOD, start - 0.5, stop + 0.5, polite))
    processes = [context.Process(target=run_caller, args=(caller, port, connections, begin, end, manners, out))
                 for caller, connections, begin, end, manners in plan]
    for process in processes:
        process.start()
    phase = Phase(server, flood, seconds)
    for _ in processes:  # read before joining: a process blocks until its samples leave the pipe
        caller, samples = out.get(timeout=seconds + 120)
        phase.samples[caller] = samples
    for process in processes:
        process.join()
    return phase


def refusals(port: int) -> float:
    """postgres_mcp_caller_refusals_total, every series summed."""
    status, body = harness.get(port, "/metrics")
    assert status == 200, body[:200]
    return sum(float(line.split()[-1]) for line in body.decode().splitlines()
               if line.startswith("postgres_mcp_caller_refusals_total{"))


# -- the run -----------------------------------------------------------------------------------------

def ms(samples: list[float], fraction: float) -> float:
    return harness.percentile(samples, fraction) * 1000 if samples else float("nan")


def measure(db: harness.BenchDatabase, folder: Path) -> tuple[list[list[Phase]], dict[str, float]]:
    """ROUNDS rounds, each: every server without a flood, then each kind of flood. Also the refusals each server
    counted."""
    callers = folder / "callers.json"
    callers.write_text(json.dumps(TOKENS))
    rounds: list[list[Phase]] = []
    counted: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        running = {name: stack.enter_context(harness.server(db.readonly_url, workers=1, threads=8,
                                                            env={**LAYOUT, "AUTH_TOKENS_FILE": str(callers), **env}))
                   for name, env in SERVERS.items()}
        for name, srv in running.items():  # warm up: connections, guard memo, catalog caches
            run_phase(srv.port, name, flood="ignores Retry-After", seconds=3)
            counted[name] = -refusals(srv.port)
        for number in range(ROUNDS):
            phases = []
            for name, srv in running.items():
                for flood in FLOODS:
                    phases.append(run_phase(srv.port, name, flood=flood, seconds=SECONDS))
                    print(f"round {number + 1}/{ROUNDS}: {name}, flood {flood}: done", flush=True)
            rounds.append(phases)
        for name, srv in running.items():
            counted[name] += refusals(srv.port)
    return rounds, counted


def render(rounds: list[list[Phase]], counted: dict[str, float]) -> str:
    lines = [
        f"Each phase {SECONDS:g} s; {ROUNDS} rounds; figures pooled over the rounds, ratios the median of the "
        "rounds' own ratios. `alice` and `bob`: one connection each; `flood`: "
        f"{FLOOD} connections (c={2 + FLOOD} in all), sending its next call as soon as an answer arrives, except "
        "after a busy one when it honours `Retry-After`.",
        "",
        "| server | flood | alice p50 / p99 ms | bob p50 / p99 ms | the two: p99 ms | vs no flood | "
        "the two, quick calls: p50 / p99 ms | vs no flood (p99) | the two: calls/s | flood: ok calls/s | "
        "flood: busy answers/s | busy answer p50 / p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in SERVERS:
        for flood in FLOODS:
            phases = [phase for chosen in rounds for phase in chosen if phase.server == name and phase.flood == flood]
            seconds = sum(phase.seconds for phase in phases)
            alice = [s for phase in phases for s in phase.latencies(("alice",))]
            bob = [s for phase in phases for s in phase.latencies(("bob",))]
            both = alice + bob
            quick = [s for phase in phases for s in phase.latencies(STEADY, quick=True)]
            ratio = quick_ratio = "1"
            if FLOODS[flood] is not None:
                ratios, quick_ratios = [], []
                for phases_of_round in rounds:
                    quiet = next(p for p in phases_of_round if p.server == name and p.flood == "none")
                    loud = next(p for p in phases_of_round if p.server == name and p.flood == flood)
                    ratios.append(ms(loud.latencies(STEADY), 0.99) / ms(quiet.latencies(STEADY), 0.99))
                    quick_ratios.append(ms(loud.latencies(STEADY, quick=True), 0.99)
                                        / ms(quiet.latencies(STEADY, quick=True), 0.99))
                ratio = f"{statistics.median(ratios):.2f}x"
                quick_ratio = f"{statistics.median(quick_ratios):.2f}x"
            flood_ok = sum(phase.count("flood", "ok") for phase in phases)
            busy = [s for phase in phases for s in phase.latencies(("flood",), "busy")]
            errors = sum(phase.count(caller, "error") for phase in phases for caller in (*STEADY, "flood"))
            steady_busy = sum(phase.count(caller, "busy") for phase in phases for caller in STEADY)
            lines.append(
                f"| {name} | {flood} | {ms(alice, 0.5):.2f} / {ms(alice, 0.99):.2f} | "
                f"{ms(bob, 0.5):.2f} / {ms(bob, 0.99):.2f} | {ms(both, 0.99):.2f} | {ratio} | "
                f"{ms(quick, 0.5):.2f} / {ms(quick, 0.99):.2f} | {quick_ratio} | "
                f"{len(both) / seconds:.0f} | {flood_ok / seconds:.0f} | {len(busy) / seconds:.0f} | "
                + (f"{ms(busy, 0.5):.2f} / {ms(busy, 0.99):.2f}" if busy else "-")
                + f" | {errors}{f' (+{steady_busy} busy for alice/bob)' if steady_busy else ''} |")
    lines += ["", "Refusals counted by each server's `postgres_mcp_caller_refusals_total` over the measured phases: "
              + ", ".join(f"{name}: {value:.0f}" for name, value in counted.items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    started = time.monotonic()
    with harness.database() as db, tempfile.TemporaryDirectory(prefix="pgmcp-bench-fair-") as folder:
        workload.prepare_pgbench(db)
        rounds, counted = measure(db, Path(folder))
    heading = (f"Fair share per caller under a flood (`bench/fair_share.py`), "
               f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    body = (harness.describe_machine("server, PostgreSQL 15 and the three client processes share them; one worker, "
                                     "THREADS=8, MAX_CONNECTIONS=4")
            + f"; {time.monotonic() - started:.0f} s in all.\n\n" + render(rounds, counted))
    print(f"# {heading}\n\n{body}")
    harness.save_result(heading, body)

if __name__ == "__main__":
    main()
