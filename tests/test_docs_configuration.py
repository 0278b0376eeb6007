"""The configuration reference is generated from the code, and the code declares every variable it reads.

``docs/configuration.md`` is ``devkit.configuration_page.render()`` written out by ``make docs``.
Every variable the server reads must be declared (name, default, description, group) in
``pgmcp_http/config/variables.py``; every declared one must be read; a declared default must be
what the code does when the variable is unset. Variables read are found two ways: by reading
the area modules (names passed to a ``Reader`` call) and by running ``load_settings`` over
environments that take each branch, with an environment that records every name looked up.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from devkit.configuration_page import PAGE, render
from pgmcp_http.config import GROUPS, VARIABLES, ConfigError, load_settings

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "pgmcp_http" / "config"
NAME = re.compile(r"^[A-Z][A-Z0-9_]{2,}$")
READERS = {"raw", "secret", "boolean", "integer", "choice", "names", "path", "positive_number", "http_url"}
URL = "postgresql://reader:pw@db.example:5432/app"
# Read from the environment by the OpenTelemetry SDK itself, not by our code.
READ_BY_THE_SDK = {"OTEL_TRACES_SAMPLER"}
# Read outside the configuration, and not ours to declare: gunicorn's own setting.
NOT_OURS = {"SCRIPT_NAME"}


class Recording(Mapping[str, str]):
    """An environment that remembers every name looked up in it."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self.values[name]

    def __contains__(self, name: object) -> bool:
        self.asked.add(str(name))
        return name in self.values

    def get(self, name: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(name)
        return self.values.get(name, default)

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the configuration must look names up, not list the environment")

    def __len__(self) -> int:
        return len(self.values)


def branch_environments(tmp_path: Path) -> list[dict[str, str]]:
    """Environments that between them take every branch of load_settings that reads more variables."""
    hmac = tmp_path / "hmac"
    hmac.write_text("h" * 40)
    secret = tmp_path / "secret"
    secret.write_text("s" * 40)
    oauth = {"OAUTH_RESOURCE": "http://127.0.0.1:9/mcp", "OAUTH_ISSUERS": "http://127.0.0.1:8",
             "ROLE_CLAIM": "db_role", "ALLOWED_ROLES": "analyst"}
    return [
        {"DATABASE_URL": URL},
        {"DATABASE_URL": URL, "PORT": "8080"},
        {"DATABASE_URL_FILE": str(_url_file(tmp_path))},
        {"DATABASE_URL": URL, "JWT_KEY_FILE": str(hmac), "JWT_ALGORITHMS": "HS256", "JWT_AUDIENCE": "a",
         "ROLE_CLAIM": "r", "ALLOWED_ROLES": "analyst"},
        {"DATABASE_URL": URL, **oauth},
        {"DATABASE_URL": URL, **oauth, "OAUTH_INTROSPECTION_CLIENT_ID": "me",
         "OAUTH_INTROSPECTION_CLIENT_SECRET_FILE": str(secret)},
        {"DATABASE_URL": "postgresql://reader@db.example:5432/app", "DB_AUTH": "aws-iam", "AWS_REGION": "eu-west-1",
         "SSL_MODE": "require"},
        {"DATABASE_URL": URL, "FEDERATION_URL": "http://127.0.0.1:7", "FEDERATION_ENDPOINT": "http://127.0.0.1:6"},
        {"DATABASE_URL": URL, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
    ]


def _url_file(tmp_path: Path) -> Path:
    path = tmp_path / "database_url"
    path.write_text(URL)
    return path


def looked_up(tmp_path: Path) -> set[str]:
    asked: set[str] = set()
    for values in branch_environments(tmp_path):
        environment = Recording(values)
        load_settings(environment)
        asked |= environment.asked
    return asked


def names_read_by(path: Path) -> set[str]:
    """Variable names passed to a Reader method (or ``http_url``) in one module; ``secret`` also reads NAME_FILE."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if called not in READERS:
            continue
        for arg in node.args[:2]:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and NAME.match(arg.value):
                found.add(arg.value)
                if called == "secret":
                    found.add(f"{arg.value}_FILE")
    return found


def scanned_names() -> set[str]:
    return set().union(*(names_read_by(path) for path in CONFIG.glob("*.py") if path.name != "variables.py"))


def _is_os_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) \
        and node.value.id == "os"


def environ_reads_outside_config() -> set[str]:
    """Names read straight from os.environ by modules outside pgmcp_http/config/ (constants resolved)."""
    found: set[str] = set()
    for path in (REPO / "pgmcp_http").rglob("*.py"):
        if CONFIG in path.parents:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        constants = {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                     and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                     for target in node.targets if isinstance(target, ast.Name)}
        for node in ast.walk(tree):
            keys: list[ast.AST] = []
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args and (
                    (node.func.attr == "get" and _is_os_environ(node.func.value)) or node.func.attr == "getenv"):
                keys = [node.args[0]]
            elif isinstance(node, ast.Subscript) and _is_os_environ(node.value):
                keys = [node.slice]
            elif isinstance(node, ast.Compare) and any(_is_os_environ(c) for c in node.comparators):
                keys = [node.left]
            for key in keys:
                value = key.value if isinstance(key, ast.Constant) else constants.get(getattr(key, "id", ""))
                if isinstance(value, str):
                    found.add(value)
    return found


def test_the_page_is_what_make_docs_writes():
    assert PAGE.read_text(encoding="utf-8") == render(), "docs/configuration.md is stale: run `make docs`"


def test_every_variable_read_is_declared_with_a_description_and_a_group(tmp_path):
    declared = {variable.name for variable in VARIABLES}
    mentioned = " ".join(f"{variable.default} {variable.help}" for variable in VARIABLES)
    read = scanned_names() | looked_up(tmp_path) | (environ_reads_outside_config() - NOT_OURS)
    undeclared = sorted(name for name in read - declared if f"`{name}`" not in mentioned)
    assert undeclared == [], f"declare these in pgmcp_http/config/variables.py: {undeclared}"
    groups = {group.key for group in GROUPS}
    assert [v.name for v in VARIABLES if not v.help.strip() or v.group not in groups] == []
    assert len(declared) == len(VARIABLES), "a variable is declared twice"


def test_every_declared_variable_is_read(tmp_path):
    """A declaration nothing reads would document a setting that does nothing."""
    read = scanned_names() | looked_up(tmp_path) | environ_reads_outside_config() | READ_BY_THE_SDK
    assert sorted({variable.name for variable in VARIABLES} - read) == []


def test_the_ways_of_finding_names_work(tmp_path):
    """Each way finds what it is for: Reader calls, names passed through a variable, os.environ elsewhere."""
    assert {"DATABASE_URL", "DATABASE_URL_FILE", "READ_ONLY", "SSL_CA_PATH", "OAUTH_RESOURCE", "FEDERATION_URL",
            "PORT", "THREADS", "AWS_DEFAULT_REGION"} <= scanned_names()
    assert {"HEALTH_PORT", "OAUTH_INTROSPECTION_CLIENT_SECRET_FILE", "JWT_ALGORITHMS", "AWS_REGION",
            "OTEL_EXPORTER_OTLP_PROTOCOL"} <= looked_up(tmp_path)
    assert {"PROMETHEUS_MULTIPROC_DIR", "SCRIPT_NAME"} <= environ_reads_outside_config()


def _literal_defaults() -> Iterator[tuple[str, str]]:
    for variable in VARIABLES:
        if variable.default and not variable.default.startswith("(") and not variable.name.startswith("DATABASE_URL"):
            yield variable.name, variable.default


@pytest.mark.parametrize(("name", "default"), list(_literal_defaults()))
def test_a_declared_default_is_what_the_code_does_when_unset(name, default, tmp_path):
    base = {"DATABASE_URL": URL}
    if name.startswith("OAUTH_"):
        base |= {"OAUTH_RESOURCE": "http://127.0.0.1:9/mcp", "OAUTH_ISSUERS": "http://127.0.0.1:8"}
    try:
        unset = load_settings(base)
    except ConfigError as exc:  # pragma: no cover - the bases are valid
        pytest.fail(str(exc))
    assert load_settings(base | {name: default}) == unset, f"{name}: the declared default {default!r} is not the code's"


def test_every_group_is_on_the_page_in_order():
    page = PAGE.read_text(encoding="utf-8")
    headings = [line[3:] for line in page.splitlines() if line.startswith("## ")]
    assert headings == [group.title for group in GROUPS]
    assert all(f"`{variable.name}`" in page for variable in VARIABLES)
