"""The official MCP conformance suite against a live gunicorn (3 workers on loopback).

Every server scenario the suite lists runs, in one process of the suite, and each one
either passes or is named in tests/conformance/expected-failures.yml with its reason;
a listed scenario that starts passing fails the test too, so the file stays true.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import start_server
from tests.nodejs import node_tools

EXPECTED_FAILURES = Path(__file__).resolve().parent / "conformance" / "expected-failures.yml"
REQUIRED = ["server-initialize", "ping", "tools-list", "resources-list", "dns-rebinding-protection"]
_ENTRY = re.compile(r"^  - (?P<name>[a-z0-9][a-z0-9-]*[a-z0-9])  # (?P<reason>\S.*)$")
_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$")


def expected_failures() -> dict[str, str]:
    """{scenario: reason} from the file; every entry is one line: ``  - name  # reason``."""
    text = EXPECTED_FAILURES.read_text()
    entries = {}
    for line in text.splitlines():
        if line.startswith("  -"):
            match = _ENTRY.match(line)
            assert match, f"{EXPECTED_FAILURES.name}: write each entry as '  - scenario  # reason': {line!r}"
            entries[match["name"]] = match["reason"]
    assert yaml.safe_load(text)["server"] == list(entries), "the YAML list and the commented lines disagree"
    return entries


def server_scenarios(tools: Any) -> list[str]:
    """The server scenarios of the suite (`list`), pending ones included."""
    done = tools.run(tools.conformance, "list")
    assert done.returncode == 0, done.stderr
    section = done.stdout.split("Server scenarios", 1)[1].split("Client scenarios", 1)[0]
    return re.findall(r"^\s+- (\S+)", section, flags=re.MULTILINE)


def failed(checks: list[dict[str, Any]]) -> bool:
    """The suite's own rule (--expected-failures): a FAILURE or a WARNING fails the scenario."""
    return any(check["status"] in ("FAILURE", "WARNING") for check in checks)


def problems(checks: list[dict[str, Any]]) -> str:
    return "; ".join(f"{check['id']}: {check.get('errorMessage') or check['description']}" for check in checks
                     if check["status"] in ("FAILURE", "WARNING"))


@pytest.fixture(scope="module")
def suite_run(pg, tmp_path_factory) -> dict[str, Any]:
    """One run of every server scenario: {scenarios, results: {scenario: checks}, exit code, output}."""
    tools = node_tools()
    scenarios = server_scenarios(tools)
    workdir = tmp_path_factory.mktemp("conformance")
    server = start_server(pg.readonly_url, workdir, workers=3, threads=4)
    try:
        done = tools.run(tools.conformance, "server", "--url", server.url, "--suite", "all",
                         "--expected-failures", str(EXPECTED_FAILURES), "-o", str(workdir / "results"),
                         timeout=180)
    finally:
        server.stop()
    results: dict[str, list[dict[str, Any]]] = {}
    for checks_file in (workdir / "results").glob("*/checks.json"):
        match = _RESULT_DIR.match(checks_file.parent.name)
        assert match, checks_file
        results[match["scenario"]] = json.loads(checks_file.read_text())
    return {"scenarios": scenarios, "results": results, "returncode": done.returncode,
            "output": done.stdout[-6000:] + done.stderr[-3000:]}


def test_expected_failures_name_real_scenarios_with_a_reason():
    entries = expected_failures()
    assert entries, "the file lists no scenario"
    assert not set(entries) & set(REQUIRED), "a required scenario cannot be an expected failure"
    assert all(len(reason) >= 10 for reason in entries.values())


def test_every_server_scenario_ran(suite_run):
    assert len(suite_run["scenarios"]) >= 30
    assert sorted(suite_run["results"]) == sorted(suite_run["scenarios"]), suite_run["output"]
    assert not set(expected_failures()) - set(suite_run["scenarios"]), "entries naming no scenario of the suite"


def test_required_scenarios_pass(suite_run):
    for scenario in REQUIRED:
        checks = suite_run["results"][scenario]
        assert checks and not failed(checks), f"{scenario}: {problems(checks)}"
        assert any(check["status"] == "SUCCESS" for check in checks)


def test_every_scenario_passes_unless_listed_and_listed_ones_still_fail(suite_run):
    expected = expected_failures()
    unexpected = {name: problems(checks) for name, checks in suite_run["results"].items()
                  if failed(checks) and name not in expected}
    stale = sorted(name for name, checks in suite_run["results"].items() if not failed(checks) and name in expected)
    assert not unexpected, f"scenarios that fail and are not in {EXPECTED_FAILURES.name}: {unexpected}"
    assert not stale, f"scenarios that now pass: delete them from {EXPECTED_FAILURES.name}: {stale}"
    # The suite read the same file and came to the same verdict.
    assert suite_run["returncode"] == 0, suite_run["output"]
