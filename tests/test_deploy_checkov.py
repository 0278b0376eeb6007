"""checkov on the Dockerfile and the Kubernetes manifests: no failed check, and every skip explained.

checkov lives in its own virtualenv (.venv/checkov, scripts/ensure-checkov.sh)
because its pins conflict with the server's. It runs with ``--skip-download``
and ``BC_SKIP_MAPPING``, so it never calls its vendor's API (this machine and
CI reach package registries only). A skip is an inline annotation
``checkov.io/skipN: CHECK_ID=reason``; a skip without a reason fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from tests.deploy_helpers import REPO, ensure_checkov


def _scan(checkov: str, framework: str, *target: str) -> list[dict[str, Any]]:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"}
    result = subprocess.run([checkov, "--skip-download", "--output", "json", "--framework", framework, *target],
                            cwd=REPO, capture_output=True, text=True, env=env, check=False, timeout=300)
    assert result.stdout.strip(), f"checkov printed nothing (exit {result.returncode}): {result.stderr[-2000:]}"
    parsed = json.loads(result.stdout)
    return parsed if isinstance(parsed, list) else [parsed]


@pytest.fixture(scope="module")
def report() -> list[dict[str, Any]]:
    """One scan per framework (given a file and a directory together, checkov scans only the directory)."""
    checkov = ensure_checkov()
    return [*_scan(checkov, "dockerfile", "--file", "Dockerfile"), *_scan(checkov, "kubernetes", "--directory", "k8s")]


def _checks(reports: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [check for report in reports for check in report.get("results", {}).get(kind, [])]


def test_both_frameworks_were_scanned(report):
    kinds = {r.get("check_type") for r in report}
    assert {"dockerfile", "kubernetes"} <= kinds, kinds
    files = {c["file_path"].lstrip("/") for c in _checks(report, "passed_checks")}
    assert {"Dockerfile", "k8s/deployment.yaml", "k8s/service.yaml", "k8s/secret.example.yaml"} <= files, files


def test_no_failed_check(report):
    failed = _checks(report, "failed_checks")
    assert not failed, "\n".join(f"{c['check_id']} {c['check_name']} in {c['file_path']}:{c['file_line_range']}"
                                 for c in failed)
    assert not any(r.get("summary", {}).get("parsing_errors") for r in report), "checkov could not parse a file"


def test_every_skipped_check_says_why(report):
    skipped = _checks(report, "skipped_checks")
    for check in skipped:
        assert (check.get("check_result", {}).get("suppress_comment") or "").strip(), check["check_id"]
    annotations = re.findall(r"checkov\.io/skip\d+:\s*(.+)", "".join(p.read_text() for p in (REPO / "k8s").glob("*")))
    for annotation in annotations:
        check_id, _, reason = annotation.partition("=")
        assert re.fullmatch(r"CKV2?_\w+", check_id) and reason, f"skip {annotation!r} needs CHECK_ID=reason"
    assert len(annotations) == len(skipped)
