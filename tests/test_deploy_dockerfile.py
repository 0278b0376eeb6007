"""The Dockerfile passes hadolint (no rule ignored) and says what the deployment relies on.

checkov's Dockerfile checks are in test_deploy_checkov.py; building what it
builds, without Docker, is test_deploy_image.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.deploy_helpers import (
    REPO,
    bundled_tool,
    dockerfile,
    final_stage,
    healthcheck_command,
    image_env,
    only,
)


def test_hadolint_finds_nothing():
    result = subprocess.run([bundled_tool("hadolint"), "--format", "json", "Dockerfile"], cwd=REPO,
                            capture_output=True, text=True, check=False)
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr
    assert "hadolint ignore" not in (REPO / "Dockerfile").read_text()


def test_multi_stage_on_the_same_pinned_python_as_the_tests():
    froms = [i for i in dockerfile() if i.keyword == "FROM"]
    assert len(froms) == 2, "a build stage and a runtime stage"
    images = {i.arguments.split()[0] for i in froms}
    assert len(images) == 1, f"both stages must use the same base image, found {images}"
    (image,) = images
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-(\w+)", image)
    assert match, f"{image}: pin an exact slim Python release (python:3.11.N-slim-<debian>)"
    assert (int(match.group(1)), int(match.group(2))) == sys.version_info[:2], (
        "the image's Python must be the one the tests (and test_deploy_image.py's venv) run")
    runtime = final_stage(dockerfile())
    assert not any(i.keyword == "RUN" and "pip" in i.arguments for i in runtime), "nothing is installed at run stage"
    assert any(i.keyword == "COPY" and i.arguments.startswith("--from=build /opt/venv") for i in runtime)


def test_non_root_numeric_user_and_port():
    user = only(dockerfile(), "USER").arguments
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 10000 and gid.isdigit(), (
        f"USER {user}: a numeric uid:gid above 10000, so runAsNonRoot can verify it")
    assert only(dockerfile(), "EXPOSE").arguments == "3401"


def test_writable_state_only_under_tmp():
    env = image_env(dockerfile())
    assert env["HOME"] == "/tmp" and env["TMPDIR"] == "/tmp", "gunicorn's control socket and temporary files"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert "PROMETHEUS_MULTIPROC_DIR" not in env, "left unset: a private directory is made in TMPDIR"
    assert "PORT" not in env, "an image-level PORT would override HEALTH_PORT"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert only(dockerfile(), "VOLUME").exec_form() == ["/tmp"]


def test_gunicorn_is_pid_1_in_exec_form():
    assert only(dockerfile(), "CMD").exec_form() == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    assert not [i for i in final_stage(dockerfile()) if i.keyword == "ENTRYPOINT"], "no wrapper shell"


def test_healthcheck_is_liveness_without_curl_and_honours_port():
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"], command
    assert "curl" not in " ".join(command) and "/livez" in command[2]
    assert "PORT" in command[2] and "HEALTH_PORT" in command[2]
    compile(command[2], "HEALTHCHECK", "exec")


def test_dockerignore_is_an_allow_list():
    lines = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {part.rstrip("/") for i in dockerfile() if i.keyword == "COPY" and not i.arguments.startswith("--from")
              for part in i.arguments.split()[:-1]}
    assert {path.removeprefix("/tmp/") for path in copied} <= allowed | {"requirements.txt"}
    assert allowed == {"requirements.txt", "wsgi.py", "gunicorn.conf.py", "pgmcp_http"}
