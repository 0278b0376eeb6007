"""The MCP SDK client as a load generator, for servers wrk cannot speak to (legacy SSE transport).

Run by bench/peers.py with the *peer's* interpreter (a throwaway venv holding
the MCP Python SDK 1.x), so this file imports nothing from this repository.
``concurrency`` sessions each call one tool back to back for ``seconds``; one
JSON line with calls/s, p50/p99 and errors is printed. Both servers compared
this way (crystaldba's over SSE, ours over streamable HTTP) pay the same
client costs.

Usage: python peer_client.py sse|http URL TOOL SQL_WITH_{KEY} CONCURRENCY SECONDS [params]
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any

from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamablehttp_client


async def _session_loop(transport: str, url: str, tool: str, sql: str, use_params: bool, deadline: float,
                        samples: list[float], errors: list[str]) -> None:
    opener = sse_client(url) if transport == "sse" else streamablehttp_client(url)
    async with opener as streams, ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        rng = random.Random()
        while time.monotonic() < deadline:
            key = rng.randint(1, 100_000)
            if use_params:
                arguments: dict[str, Any] = {"sql": sql, "params": [key]}
            else:
                arguments = {"sql": sql.replace("{KEY}", str(key))}
            started = time.perf_counter()
            try:
                result = await session.call_tool(tool, arguments)
                text = result.content[0].text if result.content else ""
                if result.isError or "abalance" not in text:
                    errors.append(text[:200])
            except Exception as exc:  # noqa: BLE001 - a load generator counts every failure, whatever it is
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
            samples.append(time.perf_counter() - started)


async def main() -> None:
    transport, url, tool, sql, concurrency, seconds = sys.argv[1:7]
    use_params = len(sys.argv) > 7 and sys.argv[7] == "params"
    samples: list[float] = []
    errors: list[str] = []
    began = time.monotonic()
    deadline = began + float(seconds)
    await asyncio.gather(*(_session_loop(transport, url, tool, sql, use_params, deadline, samples, errors)
                           for _ in range(int(concurrency))))
    elapsed = time.monotonic() - began
    ordered = sorted(samples)
    count = len(ordered)
    print(json.dumps({"rate": count / elapsed, "p50_ms": ordered[count // 2] * 1000 if count else 0,
                      "p99_ms": ordered[min(count - 1, int(count * 0.99))] * 1000 if count else 0,
                      "errors": len(errors), "requests": count, "sample": errors[0] if errors else ""}))


if __name__ == "__main__":
    asyncio.run(main())
