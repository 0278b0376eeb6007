"""The access line and the audit trail's writer: whole lines, secrets gone in every spelling, the logs' time."""

from __future__ import annotations

import json
import re
import threading
import time

from pgmcp_http.observability.lines import IsoClock, LineWriter, json_line


def test_secrets_are_redacted_also_as_json_escapes_them(tmp_path):
    path = tmp_path / "lines.log"
    writer = LineWriter(str(path), ["pa\"ss\\word", "tok3n-value"])
    writer.write(json_line({"request_id": 'pa"ss\\word', "note": "a tok3n-value here", "ok": "abc"}))
    text = path.read_text()
    assert "ss" not in text.replace("[REDACTED]", "") and "tok3n" not in text
    assert json.loads(text) == {"request_id": "[REDACTED]", "note": "a [REDACTED] here", "ok": "abc"}


def test_lines_from_many_threads_stay_whole(tmp_path):
    path = tmp_path / "lines.log"
    writer = LineWriter(str(path))
    payload = "x" * 3000

    def write(n: int) -> None:
        for i in range(200):
            writer.write(json_line({"thread": n, "i": i, "payload": payload}))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = path.read_text().splitlines()
    assert len(lines) == 1600 and all(json.loads(line)["payload"] == payload for line in lines)


def test_the_clock_writes_the_logs_time_format_and_keeps_up():
    clock = IsoClock()
    before = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    first = clock.now()
    after = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first)
    assert before <= first[:19] <= after
    time.sleep(1.1)
    later = clock.now()
    assert later[:19] > first[:19]  # the cached second moved on
