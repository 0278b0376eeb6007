"""Build what the Dockerfile builds, without Docker, and run it the way the container runs.

There is no Docker engine here (only the client), so the image's two stages
are replayed from the Dockerfile itself: a fresh virtualenv made by the same
Python, the Dockerfile's own ``pip install`` arguments against the same
requirements, the same files copied and compiled. Then the Dockerfile's
``CMD`` runs with the image's ``ENV``, in the conditions of ``docker run
--read-only --tmpfs /tmp --user 10001``: as root (CI), in a private mount
namespace where the root filesystem is read-only and ``/tmp`` is a fresh
tmpfs, as the unprivileged ``nobody``. (Not root: the application copy is
made read-only and ``/tmp`` of the image's environment points at a scratch
directory.) It must become live and ready, pass the image's HEALTHCHECK, keep
its writable state on /tmp, and stop gracefully on SIGTERM, finishing an
in-flight call.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devkit import devdb
from tests.deploy_helpers import REPO, dockerfile, graceful_timeout_s, healthcheck_command, image_env, only
from tests.helpers import SERVER_LOGS, request, stop_process, wait_until

NOBODY = 65534
ROOT = os.geteuid() == 0
PYTHON = f"python{sys.version_info[0]}.{sys.version_info[1]}"
DOCKER_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Image:
    base: Path
    venv: Path
    app: Path


def _build_step(pattern: str) -> list[str]:
    """The arguments of the build stage's RUN command matching ``pattern`` (e.g. pip install)."""
    for instruction in dockerfile():
        if instruction.stage == 0 and instruction.keyword == "RUN":
            for command in instruction.arguments.split("&&"):
                words = shlex.split(command)
                if re.search(pattern, command):
                    return words
    raise AssertionError(f"the Dockerfile's build stage has no RUN matching {pattern!r}")


def _relocate(words: list[str], image: Image) -> list[str]:
    mapping = {"/opt/venv": str(image.venv), "/app": str(image.app), "/tmp/requirements.txt":
               str(REPO / "requirements.txt")}
    result = []
    for word in words:
        for old, new in mapping.items():
            if word == old or word.startswith(old + "/"):
                word = new + word[len(old):]
                break
        result.append(word)
    return result


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    """The image's /opt/venv and /app, built outside /tmp (the container's /tmp is a fresh tmpfs)."""
    base = Path(tempfile.mkdtemp(prefix="pgmcp-image-", dir="/var/tmp"))
    built = Image(base=base, venv=base / "opt-venv", app=base / "app")
    try:
        subprocess.run([PYTHON, "-m", "venv", str(built.venv)], check=True)
        pip = _build_step(r"/opt/venv/bin/pip install")
        # The same arguments; only pip's download cache is allowed here (the image build keeps none).
        subprocess.run([*_relocate(pip, built), "--quiet", "--disable-pip-version-check"], check=True, timeout=300)
        for instruction in dockerfile():
            if instruction.stage == 0 and instruction.keyword == "COPY" and "requirements" not in instruction.arguments:
                *sources, _ = instruction.arguments.split()
                for source in sources:
                    origin = REPO / source.rstrip("/")
                    if origin.is_dir():
                        shutil.copytree(origin, built.app / origin.name,
                                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                    else:
                        built.app.mkdir(exist_ok=True)
                        shutil.copy2(origin, built.app / origin.name)
        compile_step = _build_step(r"compileall")
        subprocess.run([str(built.venv / "bin" / "python"), *_relocate(compile_step, built)[1:]], check=True)
        for path in (base, *base.rglob("*")):  # readable by anyone, writable by no one (as COPY'd root files are)
            if not path.is_symlink():
                path.chmod((path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0)) & ~0o222)
        yield built
    finally:
        for path in (base, *base.rglob("*")):
            with contextlib.suppress(OSError):
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode | 0o200)
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Container:
    proc: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]
    log_path: Path
    scratch_tmp: Path | None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tmp(self) -> Path:
        """The container's /tmp, seen from outside (its mount namespace, through /proc)."""
        return self.scratch_tmp or Path(f"/proc/{self.proc.pid}/root/tmp")

    def stop(self) -> None:
        stop_process(self.proc, grace=graceful_timeout_s() + 10)


def _container_env(image: Image, scratch_tmp: Path | None, extra: dict[str, str]) -> dict[str, str]:
    env = image_env(dockerfile())
    env["PATH"] = env["PATH"].replace("/opt/venv/bin", str(image.venv / "bin")).replace("$PATH", DOCKER_DEFAULT_PATH)
    if not env["PATH"].endswith(DOCKER_DEFAULT_PATH):
        env["PATH"] = f"{image.venv / 'bin'}:{DOCKER_DEFAULT_PATH}"
    if scratch_tmp is not None:
        env = {key: value.replace("/tmp", str(scratch_tmp)) if value.startswith("/tmp") else value
               for key, value in env.items()}
    env.update(extra)
    return env


def _run(image: Image, tmp_path: Path, extra: dict[str, str]) -> Container:
    """``docker run --read-only --tmpfs /tmp --user nobody`` of the image's CMD, as near as this machine allows."""
    command = only(dockerfile(), "CMD").exec_form()
    assert command
    scratch = None if ROOT else tmp_path / "container-tmp"
    if scratch is not None:
        scratch.mkdir()
    env = _container_env(image, scratch, extra)
    if ROOT:
        script = ('mount -o remount,bind,ro / && mount -t tmpfs -o mode=1777,size=64m tmpfs /tmp && '
                  f'cd {shlex.quote(str(image.app))} && '
                  f'exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- "$@"')
        argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", *command]
    else:
        argv = command
    log_path = tmp_path / f"container-{extra['PORT']}.log"
    SERVER_LOGS.append(log_path)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, cwd=image.app, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Container(proc=proc, port=int(extra["PORT"]), env=env, log_path=log_path, scratch_tmp=scratch)


@pytest.fixture(scope="module")
def container(image: Image, pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    port = devdb.free_port()
    started = _run(image, tmp_path_factory.mktemp("image"), {"DATABASE_URL": pg.readonly_url, "PORT": str(port)})
    try:
        def ready() -> bool:
            if started.proc.poll() is not None:
                raise AssertionError(f"the server exited with {started.proc.returncode}:\n"
                                     f"{started.log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                return request("GET", f"{started.base}/readyz", timeout=2)[0] == 200
            return False

        wait_until(ready, timeout=60, what="/readyz answering 200")
        yield started
    finally:
        started.stop()


def test_the_build_used_the_dockerfiles_python_and_requirements(image: Image):
    version = subprocess.run([str(image.venv / "bin" / "python"), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == str(sys.version_info[:2])
    assert list(image.app.rglob("*.pyc")), "compiled at build time: the root filesystem is read-only at run time"
    assert not os.access(image.app / "wsgi.py", os.W_OK) or ROOT


def test_live_and_ready_on_a_read_only_root_as_nobody(container: Container):
    assert request("GET", f"{container.base}/livez")[0] == 200
    status, _, body = request("GET", f"{container.base}/readyz")
    assert status == 200, body
    if ROOT:
        owner = os.stat(f"/proc/{container.proc.pid}").st_uid
        assert owner == NOBODY, "the server runs unprivileged"
        mounts = Path(f"/proc/{container.proc.pid}/mounts").read_text().splitlines()
        assert any(line.split()[1] == "/" and "ro" in line.split()[3].split(",") for line in mounts)


def test_the_images_healthcheck_passes_and_fails_when_nothing_listens(container: Container):
    command = healthcheck_command()
    python = str(Path(container.env["PATH"].split(":")[0]) / command[0])
    ok = subprocess.run([python, *command[1:]], env=container.env, capture_output=True, timeout=10, check=False)
    assert ok.returncode == 0, ok.stderr
    elsewhere = {**container.env, "PORT": str(devdb.free_port())}
    down = subprocess.run([python, *command[1:]], env=elsewhere, capture_output=True, timeout=10, check=False)
    assert down.returncode != 0


def test_writable_state_stays_in_tmp(container: Container):
    tmp = container.tmp
    # gunicorn opens its control socket a moment after the workers answer: wait for it, do not race it.
    wait_until(lambda: (tmp / ".gunicorn" / "gunicorn.ctl").is_socket(), timeout=10,
               what="gunicorn's control socket in /tmp (HOME=/tmp)")
    assert list(tmp.glob("pgmcp-metrics-*/*.db")), "the private Prometheus multiprocess directory (TMPDIR)"
    log = container.log_path.read_text()
    assert "Read-only file system" not in log and "Failed to start control socket" not in log, log[-2000:]


def test_sigterm_finishes_the_in_flight_call_then_exits_cleanly(image: Image, pg: Any, tmp_path: Path):
    port = devdb.free_port()
    started = _run(image, tmp_path, {"DATABASE_URL": pg.readonly_url, "PORT": str(port)})
    try:
        wait_until(lambda: _answers(started), timeout=60, what="the server answering")
        reply: dict[str, Any] = {}

        def slow_call() -> None:
            status, _, body = request("POST", f"{started.base}/mcp/tools/call",
                                      {"name": "query", "arguments": {"sql": "SELECT pg_sleep(2) IS NULL AS slept"}},
                                      headers={"Content-Type": "application/json"}, timeout=30)
            reply.update(status=status, body=body)

        caller = threading.Thread(target=slow_call)
        caller.start()
        time.sleep(0.7)
        sent = time.monotonic()
        started.proc.send_signal(signal.SIGTERM)  # what docker stop / the kubelet / ECS send to PID 1
        code = started.proc.wait(timeout=graceful_timeout_s() + 10)
        caller.join(timeout=10)
        assert reply.get("status") == 200 and reply["body"]["isError"] is False, reply
        assert code == 0, started.log_path.read_text()[-2000:]
        assert time.monotonic() - sent < graceful_timeout_s()
    finally:
        started.stop()


def _answers(started: Container) -> bool:
    if started.proc.poll() is not None:
        raise AssertionError(f"the server exited: {started.log_path.read_text()[-2000:]}")
    with contextlib.suppress(OSError):
        return request("GET", f"{started.base}/livez", timeout=2)[0] == 200
    return False
