"""Fair share per caller: a caller over its cap or rate is refused at once (429 on REST, an isError result on
MCP), the others are served as usual, nothing leaks, and the refusals are counted and audited.

The pure module with an injected clock first, then the settings, then live servers over the session's
PostgreSQL (a slow call held with ``pg_sleep`` and ended with ``pg_cancel_backend``: no timing races).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgmcp_http.config import ConfigError, load_settings
from pgmcp_http.fairshare import NO_TURN, FairShare
from pgmcp_http.identity import Caller
from tests.helpers import (
    modern_rpc,
    request,
    rpc,
    scrape,
    start_server,
    start_up_failure,
    wait_until,
)

URL = "postgresql://reader:pw@db.example:5432/app"
TOKENS = {"alice": "fair-share-alice-" + "0123456789abcdef", "bob": "fair-share-bob-" + "fedcba9876543210"}
ALICE, BOB = Caller(subject="alice"), Caller(subject="bob")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the module alone ---------------------------------------------------------------------------------

def test_the_cap_refuses_one_more_call_at_once_and_frees_the_slot_when_a_call_ends():
    share = FairShare(max_concurrent=2)
    first, second, third = share.turn(ALICE), share.turn(ALICE), share.turn(ALICE)
    assert first.__enter__() is None and second.__enter__() is None
    busy = third.__enter__()
    assert busy is not None and busy.reason == "concurrent" and busy.retry_after_s == 1
    assert busy.message == ("busy: caller 'alice' already has 2 calls running in this worker, its fair share "
                            "(CALLER_MAX_CONCURRENT=2); retry after 1 s")
    third.__exit__(None, None, None)  # a refused turn gives nothing back
    assert share.running(ALICE) == 2
    with share.turn(BOB) as other:  # another caller is not affected
        assert other is None and share.running() == 3
    first.__exit__(None, None, None)
    with share.turn(ALICE) as again:
        assert again is None and share.running(ALICE) == 2
    second.__exit__(None, None, None)
    assert share.running() == 0 and share.tracked() == (0, 0)


def test_a_call_that_raises_gives_its_slot_back():
    share = FairShare(max_concurrent=1)

    def failing_call() -> None:
        with share.turn(ALICE) as busy:
            assert busy is None
            raise RuntimeError("the tool failed")

    with pytest.raises(RuntimeError):
        failing_call()
    assert share.running(ALICE) == 0 and share.tracked() == (0, 0)
    with share.turn(ALICE) as busy:
        assert busy is None


def test_callers_are_told_apart_by_issuer_and_subject():
    share = FairShare(max_concurrent=1)
    one = Caller(subject="same", issuer="https://a.example")
    other = Caller(subject="same", issuer="https://b.example")
    with share.turn(one) as first, share.turn(other) as second, share.turn(Caller(subject="same")) as third:
        assert (first, second, third) == (None, None, None)
        with share.turn(one) as refused:
            assert refused is not None
    with share.turn(None) as anonymous, share.turn(Caller(subject="anonymous")) as same:
        assert anonymous is None and same is not None  # no caller is the anonymous caller


def test_the_bucket_holds_a_minute_of_the_workers_share_and_refills_continuously():
    clock = Clock()
    share = FairShare(rate_per_minute=6, workers=2, clock=clock)  # 3 a minute in this worker: one per 20 s
    for _ in range(3):
        with share.turn(ALICE) as busy:
            assert busy is None
    with share.turn(ALICE) as busy:
        assert busy is not None and busy.reason == "rate" and busy.retry_after_s == 20
        assert busy.message == ("busy: caller 'alice' is over its fair share of 6 calls per minute "
                                "(CALLER_RATE_LIMIT=6); retry after 20 s")
    with share.turn(BOB) as other:
        assert other is None
    clock.now += 12.5
    with share.turn(ALICE) as busy:
        assert busy is not None and busy.retry_after_s == 8  # 7.5 s to go, in whole seconds up
    clock.now += 7.5
    with share.turn(ALICE) as busy:
        assert busy is None
    with share.turn(ALICE) as busy:
        assert busy is not None and busy.retry_after_s == 20
    clock.now += 600  # refills up to the minute's share, not beyond
    for _ in range(3):
        with share.turn(ALICE) as busy:
            assert busy is None
    with share.turn(ALICE) as busy:
        assert busy is not None


def test_a_rate_below_the_worker_count_still_admits_one_call_per_worker():
    clock = Clock()
    share = FairShare(rate_per_minute=1, workers=4, clock=clock)  # a quarter of a call a minute here
    with share.turn(ALICE) as busy:
        assert busy is None
    with share.turn(ALICE) as busy:
        assert busy is not None and busy.retry_after_s == 240


def test_a_refusal_for_the_cap_takes_no_token_and_a_refusal_for_the_rate_takes_no_slot():
    clock = Clock()
    share = FairShare(max_concurrent=1, rate_per_minute=2, clock=clock)
    with share.turn(ALICE) as busy:
        assert busy is None
        with share.turn(ALICE) as refused:
            assert refused is not None and refused.reason == "concurrent"
    with share.turn(ALICE) as busy:  # the second token is still there
        assert busy is None
    with share.turn(ALICE) as busy:
        assert busy is not None and busy.reason == "rate"
    assert share.running() == 0


def test_full_buckets_are_swept_so_memory_follows_the_active_callers():
    clock = Clock()
    share = FairShare(rate_per_minute=60, clock=clock)
    for number in range(100):
        with share.turn(Caller(subject=f"caller-{number}")) as busy:
            assert busy is None
    assert share.tracked() == (0, 100)
    clock.now += 61  # every bucket has refilled (one call a second)
    with share.turn(ALICE) as busy:
        assert busy is None
    assert share.tracked() == (0, 1)


def test_no_cap_and_no_rate_hold_nothing():
    share = FairShare()
    assert not share.enabled and share.turn(ALICE) is NO_TURN
    with share.turn(ALICE) as busy:
        assert busy is None
    assert share.tracked() == (0, 0)


def test_a_long_subject_is_shortened_in_the_message():
    share = FairShare(max_concurrent=1)
    long = Caller(subject="x" * 500)
    with share.turn(long), share.turn(long) as busy:
        assert busy is not None and "x" * 80 + "..." in busy.message and "x" * 81 not in busy.message


def test_threads_entering_and_leaving_at_once_leave_no_count_behind():
    share = FairShare(max_concurrent=3, rate_per_minute=1_000_000)
    admitted: list[int] = []

    def work(number: int) -> None:
        caller = (ALICE, BOB)[number % 2]
        for _ in range(300):
            with share.turn(caller) as busy:
                if busy is None:
                    admitted.append(share.running(caller))

    threads = [threading.Thread(target=work, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admitted and max(admitted) <= 3
    assert share.running() == 0 and share.tracked()[0] == 0


# -- the settings -------------------------------------------------------------------------------------

def settings(**env: str):
    return load_settings({"DATABASE_URL": URL, **env})


def test_the_default_cap_is_the_pool_less_one_with_identity_and_none_without():
    assert settings().caller_cap is None  # everyone is anonymous: a cap would throttle them together
    assert settings(AUTH_TOKENS=TOKENS["alice"]).caller_cap == 4  # 10 connections / 2 workers - 1
    assert settings(AUTH_TOKENS=TOKENS["alice"], MAX_CONNECTIONS="2", WEB_CONCURRENCY="2").caller_cap == 1
    assert settings(AUTH_TOKENS=TOKENS["alice"], MAX_CONNECTIONS="40", WEB_CONCURRENCY="4").caller_cap == 9
    assert settings(AUTH_TOKENS=TOKENS["alice"], CALLER_MAX_CONCURRENT="off").caller_cap is None
    assert settings(AUTH_TOKENS=TOKENS["alice"], CALLER_MAX_CONCURRENT="0").caller_cap is None
    assert settings(CALLER_MAX_CONCURRENT="2").caller_cap == 2  # set explicitly, it applies without auth too
    assert settings().caller_rate_limit is None and settings(CALLER_RATE_LIMIT="off").caller_rate_limit is None
    assert settings(CALLER_RATE_LIMIT="120").caller_rate_limit == 120


@pytest.mark.parametrize(("env", "fragment"), [
    ({"CALLER_MAX_CONCURRENT": "-1"}, "CALLER_MAX_CONCURRENT='-1' is not a number of calls"),
    ({"CALLER_MAX_CONCURRENT": "many"}, "CALLER_MAX_CONCURRENT='many' is not a number of calls"),
    ({"CALLER_MAX_CONCURRENT": "20000"}, "from 1 to 10000"),
    ({"CALLER_RATE_LIMIT": "1.5"}, "CALLER_RATE_LIMIT='1.5' is not a rate"),
    ({"CALLER_RATE_LIMIT": "lots"}, "calls per minute per caller"),
])
def test_bad_values_name_the_variable(env, fragment):
    with pytest.raises(ConfigError) as caught:
        settings(**env)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_value_stops_start_up_with_one_line(pg, tmp_path):
    lines = start_up_failure(pg.readonly_url, tmp_path, {"CALLER_RATE_LIMIT": "fast"})
    assert any("configuration error: CALLER_RATE_LIMIT='fast' is not a rate" in line for line in lines), lines


# -- live servers -------------------------------------------------------------------------------------

def tokens_file(workdir: Path) -> Path:
    path = workdir / "callers.json"
    path.write_text(json.dumps(TOKENS))
    return path


@pytest.fixture(scope="module")
def capped(pg, tmp_path_factory):
    """One worker, four threads, each caller one call at once."""
    workdir = tmp_path_factory.mktemp("fair-share")
    audit = workdir / "audit.jsonl"
    server = start_server(pg.readonly_url, workdir, workers=1, threads=4,
                          env={"AUTH_TOKENS_FILE": str(tokens_file(workdir)), "CALLER_MAX_CONCURRENT": "1",
                               "AUDIT_LOG": str(audit)})
    yield server, audit
    server.stop()


@pytest.fixture(scope="module")
def rated(pg, tmp_path_factory):
    """One worker, each caller three calls a minute, no cap."""
    workdir = tmp_path_factory.mktemp("fair-rate")
    audit = workdir / "audit.jsonl"
    server = start_server(pg.readonly_url, workdir, workers=1, threads=4,
                          env={"AUTH_TOKENS_FILE": str(tokens_file(workdir)), "CALLER_MAX_CONCURRENT": "off",
                               "CALLER_RATE_LIMIT": "3", "AUDIT_LOG": str(audit)})
    yield server, audit
    server.stop()


def rest_call(server: Any, who: str, sql: str, request_id: str | None = None) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKENS[who]}"}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    return request("POST", f"{server.base}/mcp/tools/call", {"name": "query", "arguments": {"sql": sql}},
                   headers=headers, timeout=60)


def mcp_call(server: Any, who: str, method: str, params: dict[str, Any], request_id: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {TOKENS[who]}"}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    return modern_rpc(server.url, method, params, headers=headers)


def handshake(server: Any, who: str) -> tuple[str, str]:
    """A 2025-11-25 session for ``who``: its id and revision."""
    reply = rpc(server.url, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                           "clientInfo": {"name": "fair-share-test", "version": "0"}},
                headers={"Authorization": f"Bearer {TOKENS[who]}"})
    assert reply.status == 200, reply.body
    return reply.headers["mcp-session-id"], reply.body["result"]["protocolVersion"]


class Background:
    """A call sent on a thread of its own; ``result`` once it has answered."""

    def __init__(self, send: Any) -> None:
        self.result: Any = None
        self._thread = threading.Thread(target=self._run, args=(send,), daemon=True)
        self._thread.start()

    def _run(self, send: Any) -> None:
        self.result = send()

    def join(self, timeout: float = 60) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the call never answered"
        return self.result


def backends(pg: Any, marker: str) -> list[int]:
    """The backends running the statement that carries ``marker``."""
    with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
                            "AND pid <> pg_backend_pid()", (f"%{marker}%",)).fetchall()
    return [pid for (pid,) in rows]


def cancel(pg: Any, pids: list[int]) -> None:
    with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
        for pid in pids:
            conn.execute("SELECT pg_cancel_backend(%s)", (pid,))


def records(audit: Path, request_id: str) -> list[dict[str, Any]]:
    lines = audit.read_text().splitlines() if audit.exists() else []
    return [record for record in map(json.loads, lines) if record["request_id"] == request_id]


def audited(audit: Path, request_id: str) -> dict[str, Any]:
    found = wait_until(lambda: records(audit, request_id), what=f"the audit record of {request_id}")
    assert len(found) == 1, found
    return found[0]


def refusals(server: Any) -> dict[tuple[str, str], float]:
    """postgres_mcp_caller_refusals_total by (reason, surface); every series has exactly those two labels."""
    found = {}
    for (name, labels), value in scrape(server).items():
        if name == "postgres_mcp_caller_refusals_total":
            assert {key for key, _ in labels} == {"reason", "surface"}, labels
            found[(dict(labels)["reason"], dict(labels)["surface"])] = value
    return found


def test_a_caller_at_its_cap_is_refused_at_once_while_another_is_served(pg, capped):
    server, audit = capped
    batch = uuid.uuid4().hex[:8]
    marker = f"fair_share_hold_{batch}"
    before = refusals(server)
    held = Background(lambda: rest_call(server, "alice", f"SELECT pg_sleep(60) AS {marker}"))
    pids = wait_until(lambda: backends(pg, marker), timeout=30, what="alice's slow call running")
    try:
        started = time.monotonic()
        status, headers, body = rest_call(server, "alice", "SELECT 1 AS one", f"{batch}-rest")
        assert time.monotonic() - started < 20  # at once, not after the held call (60 s)
        assert status == 429, body
        assert int(headers["retry-after"]) >= 1
        assert body["isError"] is True
        assert body["error"] == ("busy: caller 'alice' already has 1 call running in this worker, its fair share "
                                 "(CALLER_MAX_CONCURRENT=1); retry after 1 s")

        reply = mcp_call(server, "alice", "tools/call", {"name": "query", "arguments": {"sql": "SELECT 1 AS one"}},
                         f"{batch}-mcp")
        assert reply.status == 200, reply.body
        result = reply.body["result"]
        assert result["isError"] is True and result["content"][0]["text"] == body["error"]

        read = mcp_call(server, "alice", "resources/read", {"uri": "postgres://table/public/orders"},
                        f"{batch}-read")
        assert read.status == 200 and read.body["error"]["message"] == body["error"]

        session, version = handshake(server, "alice")  # initialize does not count either
        answer = rpc(server.url, "tools/call", {"name": "query", "arguments": {"sql": "SELECT 1 AS one"}},
                     headers={"Mcp-Session-Id": session, "MCP-Protocol-Version": version,
                              "Authorization": f"Bearer {TOKENS['alice']}"})
        assert answer.body["result"] == {"content": [{"type": "text", "text": body["error"]}], "isError": True}

        listed = mcp_call(server, "alice", "tools/list", {})  # not a call that counts
        assert listed.status == 200 and listed.body["result"]["tools"]

        status, _, other = rest_call(server, "bob", "SELECT 2 AS two", f"{batch}-bob")
        assert status == 200 and other["isError"] is False and other["structuredContent"]["rows"] == [{"two": 2}]
        theirs = mcp_call(server, "bob", "tools/call", {"name": "query", "arguments": {"sql": "SELECT 3 AS three"}})
        assert theirs.body["result"]["isError"] is False
    finally:
        cancel(pg, pids)
    status, _, ended = held.join()
    assert status == 200 and ended["isError"] is True  # cancelled on PostgreSQL

    status, _, served = rest_call(server, "alice", "SELECT 4 AS four")
    assert status == 200 and served["isError"] is False and served["structuredContent"]["rows"] == [{"four": 4}]

    for request_id, method in ((f"{batch}-rest", "tools/call"), (f"{batch}-mcp", "tools/call"),
                               (f"{batch}-read", "resources/read")):
        record = audited(audit, request_id)
        assert record["subject"] == "alice" and record["method"] == method and record["outcome"] == "busy"
        assert "fair share" in record["reason"] and record["sql"] is None
    assert audited(audit, f"{batch}-bob")["outcome"] == "ok"

    after = refusals(server)
    assert after[("concurrent", "rest")] - before.get(("concurrent", "rest"), 0) == 1
    assert after[("concurrent", "mcp")] - before.get(("concurrent", "mcp"), 0) == 3
    assert after[("rate", "rest")] == before.get(("rate", "rest"), 0)


def test_calls_that_fail_give_their_slot_back(capped):
    """With one call at once per caller, any call that kept its slot would get the next one refused."""
    server, _ = capped
    failing = ["SELECT 1/0", "DROP TABLE orders", "SELECT * FROM no_such_table", "SELECT pg_sleep(", "SELECT 5 AS five"]
    for sql in failing * 2:
        status, _, body = rest_call(server, "alice", sql)
        assert status == 200, body
        assert body["isError"] is (sql != "SELECT 5 AS five"), body
    status, _, body = request("POST", f"{server.base}/mcp/tools/call", {"name": "no_such_tool", "arguments": {}},
                              headers={"Content-Type": "application/json",
                                       "Authorization": f"Bearer {TOKENS['alice']}"})
    assert status == 404, body
    bad = mcp_call(server, "alice", "tools/call", {"name": "query", "arguments": {"sql": 5}})
    assert bad.body["result"]["isError"] is True and "busy" not in bad.body["result"]["content"][0]["text"]
    missing = mcp_call(server, "alice", "resources/read", {"uri": "postgres://table/public/no_such_table"})
    assert "busy" not in missing.body["error"]["message"]
    status, _, body = rest_call(server, "alice", "SELECT 6 AS six")
    assert status == 200 and body["structuredContent"]["rows"] == [{"six": 6}]


def test_the_rate_refuses_the_call_past_the_minutes_share(rated):
    server, audit = rated
    batch = uuid.uuid4().hex[:8]
    for number in range(3):
        status, _, body = rest_call(server, "alice", f"SELECT {number} AS n")
        assert status == 200 and body["isError"] is False
    status, headers, body = rest_call(server, "alice", "SELECT 9 AS n", f"{batch}-rate")
    assert status == 429, body
    assert 1 <= int(headers["retry-after"]) <= 20  # one call every 20 s comes back
    assert body["error"].startswith("busy: caller 'alice' is over its fair share of 3 calls per minute "
                                    "(CALLER_RATE_LIMIT=3); retry after ")
    assert body["error"].endswith(f"retry after {headers['retry-after']} s")
    reply = mcp_call(server, "alice", "tools/call", {"name": "query", "arguments": {"sql": "SELECT 1 AS one"}})
    result = reply.body["result"]
    assert result["isError"] is True and "CALLER_RATE_LIMIT=3" in result["content"][0]["text"]
    status, _, other = rest_call(server, "bob", "SELECT 2 AS two")  # bob has a bucket of his own
    assert status == 200 and other["isError"] is False

    record = audited(audit, f"{batch}-rate")
    assert record["outcome"] == "busy" and "CALLER_RATE_LIMIT" in record["reason"]
    counted = refusals(server)
    assert counted[("rate", "rest")] >= 1 and counted[("rate", "mcp")] >= 1
    assert counted[("concurrent", "rest")] == counted[("concurrent", "mcp")] == 0
