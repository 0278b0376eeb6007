"""What the deployment tests share: reading the deploy files, and the figures they must agree on.

The Dockerfile is read into its instructions (with line continuations joined)
so tests can check, and re-run, exactly what it says: its environment, its
command and its health check.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pgmcp_http.config import VARIABLES

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

# What the manifests' timings are derived from (gunicorn.conf.py, the platforms' documentation).
CLOUD_RUN_KILL_AFTER_S = 10  # Cloud Run: SIGKILL 10 s after SIGTERM
FARGATE_MAX_STOP_TIMEOUT_S = 120
FEDERATION_HTTP_TIMEOUT_S = 30  # the federation's HTTP client gives up after 30 s
KNOWN_VARIABLES = frozenset(variable.name for variable in VARIABLES) | {"GUNICORN_CMD_ARGS"}


def graceful_timeout_s() -> int:
    """gunicorn's graceful_timeout as gunicorn.conf.py sets it (read, not imported: importing it
    reads the whole configuration)."""
    match = re.search(r"^graceful_timeout\s*=\s*(\d+)\s*$", (REPO / "gunicorn.conf.py").read_text(), re.MULTILINE)
    assert match, "gunicorn.conf.py no longer sets graceful_timeout to a number; update tests/deploy_helpers.py"
    return int(match.group(1))


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of ``path``."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def yaml_document(path: Path) -> dict[str, Any]:
    (doc,) = yaml_documents(path)
    return doc


def json_file(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int
    stage: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD, or None for shell form."""
        text = self.arguments
        if self.keyword == "HEALTHCHECK":
            text = re.sub(r"^(--\S+\s+)*CMD\s+", "", text)
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def dockerfile(path: Path = REPO / "Dockerfile") -> list[Instruction]:
    """The Dockerfile's instructions, continuations joined and comments dropped."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    stage = -1
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        pending.append(line[:-1].strip() if line.endswith("\\") else line)
        if line.endswith("\\"):
            continue
        text = " ".join(part for part in pending if part)
        pending = []
        keyword, _, arguments = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword=keyword, arguments=arguments.strip(), line=start, stage=stage))
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def image_env(instructions: list[Instruction]) -> dict[str, str]:
    """The final image's ENV, in order (``KEY=VALUE`` pairs, ``$PATH`` expanded as Docker would)."""
    env: dict[str, str] = {}
    for instruction in final_stage(instructions):
        if instruction.keyword != "ENV":
            continue
        for pair in shlex.split(instruction.arguments):
            key, _, value = pair.partition("=")
            env[key] = re.sub(r"\$\{?PATH\}?", env.get("PATH", "/usr/local/bin:/usr/bin:/bin"), value)
    return env


def only(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in final_stage(instructions) if i.keyword == keyword]
    assert len(found) == 1, f"the final stage should have exactly one {keyword}, found {len(found)}"
    return found[0]


def healthcheck_command() -> list[str]:
    """The Dockerfile's HEALTHCHECK command (exec form)."""
    command = only(dockerfile(), "HEALTHCHECK").exec_form()
    assert command, "HEALTHCHECK must use the exec form: a JSON array after CMD"
    return command


def bundled_tool(name: str) -> str:
    """A tool installed into the test virtualenv from PyPI (requirements-dev.txt)."""
    found = VENV_BIN / name
    if found.exists():
        return str(found)
    located = shutil.which(name)
    assert located, f"{name} is missing: run `make test` (or pip install -r requirements-dev.txt)"
    return located


def ensure_checkov() -> str:
    """checkov, in its own virtualenv (.venv/checkov), installed by scripts/ensure-checkov.sh."""
    subprocess.run([str(REPO / "scripts" / "ensure-checkov.sh")], check=True, env={
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "PYTHON": "python3.11"})
    return str(REPO / ".venv" / "checkov" / "bin" / "checkov")
