"""Every example marked runnable in README.md and docs/ runs against the sample database, as written.

A fenced ``sh``/``bash`` or ``python`` block directly after a ``<!-- runnable -->`` line is run
against a server like `make run`'s (the sample database, default settings) with
``localhost:3401`` pointed at it; it must exit 0, and its curl calls fail on an HTTP error status
(a block that shows an error answer is marked ``<!-- runnable: http errors -->`` instead). A
``json`` block directly after an ``<!-- output -->`` line, following such a shell block, is what
the block's last command prints: every key it shows must exist at the same place in the real
output and every scalar must be equal, except the string ``"..."``, which stands for a value that
varies; a list has exactly the items shown unless its last item is ``"..."``. So a renamed field, a
changed default or a dropped tool cannot leave a stale example behind.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devkit import devdb
from tests.helpers import start_server
from tests.markdown import fenced_blocks

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
RUNNABLE = "<!-- runnable -->"
RUNNABLE_WITH_ERRORS = "<!-- runnable: http errors -->"
OUTPUT = "<!-- output -->"
MARKER = re.compile(r"^\s*<!--\s*(runnable|output)", re.IGNORECASE)
LANGUAGES = {"sh": "sh", "bash": "sh", "python": "python"}
ELIDED = "..."


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    language: str
    code: str
    output: str | None
    http_errors: bool = False

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def examples_in(page: Path) -> list[Example]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks = {block.opening: block for block in fenced_blocks(lines)}
    inside = {number for block in blocks.values()
              for number in range(block.opening, (len(lines) if block.closing is None else block.closing + 1))}
    found: list[Example] = []
    for index, line in enumerate(lines):
        if index in inside:
            continue
        if MARKER.search(line):  # a misspelt marker would silently drop its example
            assert line.strip() in (RUNNABLE, RUNNABLE_WITH_ERRORS, OUTPUT), f"{page.name}:{index + 1}: {line!r}"
        if line.strip() not in (RUNNABLE, RUNNABLE_WITH_ERRORS):
            continue
        block = blocks.get(index + 1)
        assert block is not None, f"{page.name}:{index + 1}: {RUNNABLE} must be directly followed by a fence"
        assert block.closing is not None, f"{page.name}:{index + 2}: the fence is never closed"
        assert block.info in LANGUAGES, f"{page.name}:{index + 2}: cannot run a ```{block.info} block (sh or python)"
        after = block.closing + 1
        while after < len(lines) and not lines[after].strip():
            after += 1
        output = None
        if after < len(lines) and lines[after].strip() == OUTPUT:
            shown = blocks.get(after + 1)
            assert shown is not None and shown.info == "json", f"{page.name}:{after + 1}: {OUTPUT} needs a json block"
            assert block.info != "python", f"{page.name}:{after + 1}: {OUTPUT} follows shell blocks only"
            output = shown.body
        code = block.body
        assert ":3401" not in code.replace("localhost:3401", ""), \
            f"{page.name}:{index + 2}: write the server as localhost:3401, the address the test points elsewhere"
        found.append(Example(page, index + 2, LANGUAGES[block.info], code, output,
                             line.strip() == RUNNABLE_WITH_ERRORS))
    return found


EXAMPLES = [example for page in PAGES for example in examples_in(page)]


def last_json(stdout: str) -> Any:
    """The JSON document that ends the output (what the last command printed)."""
    lines = stdout.rstrip().splitlines()
    for start in range(len(lines) - 1, -1, -1):
        try:
            return json.loads("\n".join(lines[start:]))
        except ValueError:
            continue
    raise AssertionError(f"the output does not end with JSON:\n{stdout[-2000:]}")


def differences(shown: Any, actual: Any, where: str = "$") -> list[str]:
    """Where the documented output is not found in the real one (see the module docstring for the rules)."""
    if shown == ELIDED:
        return []
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return [f"{where}: documented an object, got {type(actual).__name__}"]
        return [problem for key, value in shown.items()
                for problem in (differences(value, actual[key], f"{where}.{key}") if key in actual
                                else [f"{where}.{key}: documented, but the server does not send it"])]
    if isinstance(shown, list):
        open_ended = bool(shown) and shown[-1] == ELIDED
        items = shown[:-1] if open_ended else shown
        if not isinstance(actual, list) or len(actual) < len(items) or (not open_ended and len(actual) != len(items)):
            return [f"{where}: documented {len(items)} items{' or more' if open_ended else ''}, got {actual!r:.200}"]
        return [problem for index, value in enumerate(items)
                for problem in differences(value, actual[index], f"{where}[{index}]")]
    return [] if shown == actual and type(shown) is type(actual) else [f"{where}: documented {shown!r}, got {actual!r}"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server like `make run`'s: its own cluster with the sample database, which no other test writes to.
    The server's logs stay in pytest's folder: the session's last test reads every server log for secrets."""
    base = Path(tempfile.mkdtemp(prefix="pgmcp-docs-"))  # under /tmp: the postgres user must reach it
    base.chmod(0o755)
    cluster = devdb.Cluster(base / "pg", devdb.free_port())
    try:
        cluster = devdb.create_cluster(base / "pg", cluster.port)
        devdb.start_cluster(cluster, extra_options="-c fsync=off -c full_page_writes=off")
        url = devdb.load_sample(cluster, password="docs-" + secrets.token_urlsafe(12))
        proc = start_server(url, tmp_path_factory.mktemp("docs"), workers=1, threads=4)
        try:
            yield proc
        finally:
            proc.stop()
    finally:
        devdb.stop_cluster(cluster, mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


def run(example: Example, port: int, workdir: Path) -> tuple[int, str, str]:
    code = example.code.replace("localhost:3401", f"127.0.0.1:{port}")
    # curl reads its defaults from $CURL_HOME/.curlrc: a time limit, no proxy, and a failure on an HTTP error.
    curlrc = "max-time = 30\nnoproxy = *\n" + ("" if example.http_errors else "fail-with-body\n")
    (workdir / ".curlrc").write_text(curlrc)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
           "CURL_HOME": str(workdir), "TMPDIR": str(workdir), "NO_PROXY": "*", "no_proxy": "*"}
    if example.language == "python":
        script = workdir / "example.py"
        script.write_text(code)
        command = [sys.executable, str(script)]
    else:
        command = ["bash", "-e", "-c", code]  # no pipefail: `curl ... | head` must pass, as in a terminal
    # A session of its own, so a background job the example starts dies with it on a timeout.
    proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        return -1, stdout, stderr + "\n(killed after 120 s)"
    return proc.returncode, stdout, stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.name for example in EXAMPLES])
def test_the_example_runs_as_written(example, server, tmp_path):
    status, stdout, stderr = run(example, server.port, tmp_path)
    assert status == 0, f"{example.name} exited {status}:\n{stdout[-2000:]}\n{stderr[-2000:]}"
    if example.output is not None:
        problems = differences(json.loads(example.output), last_json(stdout))
        assert problems == [], f"{example.name}: the documented output is stale:\n" + "\n".join(problems)


def test_the_front_door_and_the_manual_have_runnable_examples():
    """Marks cannot silently disappear: the README's first call and a good share of the manual are checked."""
    assert any(example.page.name == "README.md" for example in EXAMPLES)
    assert sum(example.output is not None for example in EXAMPLES) >= 5
    assert len(EXAMPLES) >= 20


def test_the_output_rules_catch_a_renamed_field():
    actual = {"result": {"rows": [{"n": 200}], "row_count": 1, "duration_ms": 3.2}}
    assert differences({"result": {"rows": [{"n": 200}], "duration_ms": "..."}}, actual) == []
    assert differences({"result": {"rowcount": 1}}, actual) == ["$.result.rowcount: documented, but the server "
                                                                "does not send it"]
    assert differences({"result": {"rows": [{"n": 201}]}}, actual) == ["$.result.rows[0].n: documented 201, got 200"]
    assert differences({"result": {"row_count": True}}, actual) != []
    assert differences({"result": {"rows": []}}, actual) == ["$.result.rows: documented 0 items, got [{'n': 200}]"]
    assert differences({"result": {"rows": ["..."]}}, actual) == []
