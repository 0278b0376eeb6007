"""The load generator: wrk (a separate C process, keep-alive) driven by a generated Lua script.

Every HTTP figure of ``make bench`` comes from here, so the server, the naive
baseline, PgBouncer and dbhub are measured by exactly the same client. The Lua
script varies the primary key of each request (``{KEY}`` in the body) and
counts as an error every non-200 answer and every body that reports one
(``"isError":true`` or a JSON-RPC ``"error":``); ``done()`` prints one JSON
line that :func:`run_wrk` parses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoadResult", "cpu_seconds", "run_wrk"]

KEY = "{KEY}"

_LUA = r"""
local prefix = [==[%(prefix)s]==]
local suffix = [==[%(suffix)s]==]
local keyed = %(keyed)s
local keys = %(keys)d
wrk.method = "%(method)s"
%(headers)s
local fixed = nil
local threads = {}
local marker = "%(marker)s"

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  sample = ""
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  if not keyed then
    fixed = wrk.format(nil, nil, nil, prefix ~= "" and prefix or nil)
  end
end

function request()
  if fixed then return fixed end
  return wrk.format(nil, nil, nil, prefix .. math.random(1, keys) .. suffix)
end

function response(status, headers, body)
  if status ~= 200 or string.find(body, '"isError":true', 1, true) or string.find(body, '"error":', 1, true)
     or (marker ~= "" and not string.find(body, marker, 1, true)) then
    bad = bad + 1
    if sample == "" then sample = status .. " " .. string.sub(body, 1, 300) end
  end
end

function done(summary, latency, requests)
  local errors = 0
  local sample = ""
  for _, t in ipairs(threads) do
    errors = errors + t:get("bad")
    if sample == "" then sample = t:get("sample") end
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, "max_us": %%d, "bad": %%d, ' ..
    '"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d, "sample": "%%s"}\n',
    summary.requests, summary.duration, latency:percentile(50.0), latency:percentile(99.0), latency.max,
    errors, e.connect, e.read, e.write, e.status, e.timeout,
    (string.gsub(sample, '[%%c"\\]', function(c) return string.format("\\u%%04x", string.byte(c)) end))))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """One wrk run: calls per second, latency percentiles in ms, and every kind of error counted."""

    label: str
    concurrency: int
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    sample_error: str = ""
    cpu_us: float | None = None  # CPU time of the server's processes per call, when they were given
    pg_cpu_us: float | None = None  # PostgreSQL's CPU per call (every backend), when it was measured


    @property
    def ok(self) -> bool:
        return self.errors == 0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far (processes that are gone count as 0)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _lua_headers(headers: dict[str, str]) -> str:
    return "\n".join(f'wrk.headers["{name}"] = [==[{value}]==]' for name, value in headers.items())


def run_wrk(url: str, *, label: str, concurrency: int, seconds: float, method: str = "POST", body: str = "",
            headers: dict[str, str] | None = None, keys: int = 100_000, marker: str = "",
            timeout_s: float = 10, pids: Callable[[], list[int]] | None = None) -> LoadResult:
    """Drive ``url`` with ``concurrency`` keep-alive connections for ``seconds``.

    ``body`` may hold ``{KEY}``, replaced by a random integer in 1..``keys`` on
    each request; ``marker`` is a string every good answer must contain (so a
    server that answers 200 with nothing useful is not counted as fast).
    ``pids`` lists the server's processes: their CPU time per call is then
    reported too, a figure that outside load on the machine barely moves.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    keyed = KEY in body
    prefix, _, suffix = body.partition(KEY)
    script = _LUA % {
        "prefix": prefix, "suffix": suffix, "keyed": "true" if keyed else "false", "keys": keys,
        "method": method, "headers": _lua_headers(headers or {}), "marker": marker.replace('"', '\\"'),
    }
    threads = 1 if concurrency < 4 else 2
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        path = Path(handle.name)
    watched = pids() if pids else []
    cpu_before = cpu_seconds(watched)
    try:
        proc = subprocess.run(
            [wrk, "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds:g}s", "--timeout",
             f"{timeout_s:g}s", "-s", str(path), url],
            capture_output=True, text=True, check=False, timeout=seconds + timeout_s + 30,
        )
    finally:
        path.unlink(missing_ok=True)
    cpu_used = cpu_seconds(watched) - cpu_before if pids else None
    line = next((text for text in proc.stdout.splitlines() if text.startswith("{")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    data = json.loads(line)
    errors = data["bad"] + data["connect"] + data["read"] + data["write"] + data["timeout"]
    return LoadResult(
        label=label, concurrency=concurrency, rate=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000, errors=errors, requests=data["requests"],
        sample_error=data["sample"],
        cpu_us=cpu_used / data["requests"] * 1e6 if cpu_used is not None and data["requests"] else None,
    )
