"""The naive baseline: what a first implementation of the design guide would be.

A bare Flask handler on gunicorn ``sync`` workers: it parses the JSON-RPC body,
runs the SQL through a psycopg2 pool and returns the rows. No validation, no
guard, no metrics, no logs, no read-only transaction, no row cap. It exists
only so ``make bench`` can say what the server's safety costs (or saves)
against the same load, in the same run. Never deploy it.

Run by bench/run.py as ``gunicorn -w 3 -k sync --chdir bench naive:app`` with
DATABASE_URL set.
"""

from __future__ import annotations

import json
import os

from flask import Flask, Response, request
from psycopg2.extras import RealDictCursor
from psycopg2.pool import ThreadedConnectionPool

app = Flask(__name__)
_pool: ThreadedConnectionPool | None = None


def pool() -> ThreadedConnectionPool:
    """One small pool per worker process, opened on first use (after fork)."""
    global _pool  # the naive way, on purpose
    if _pool is None:
        _pool = ThreadedConnectionPool(1, 4, os.environ["DATABASE_URL"])
    return _pool


@app.post("/mcp")
def mcp() -> Response:
    message = json.loads(request.get_data())
    arguments = message["params"]["arguments"]
    conn = pool().getconn()
    try:
        with conn.cursor(cursor_factory=RealDictCursor) as cur:
            cur.execute(arguments["sql"].replace("$1", "%s"), arguments.get("params") or None)
            rows = cur.fetchall()
        conn.commit()
    finally:
        pool().putconn(conn)
    text = json.dumps({"rows": rows, "row_count": len(rows)}, default=str)
    body = {"jsonrpc": "2.0", "id": message.get("id"),
            "result": {"content": [{"type": "text", "text": text}], "isError": False}}
    return Response(json.dumps(body), mimetype="application/json")
