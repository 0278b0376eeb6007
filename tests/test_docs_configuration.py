"""The configuration reference is generated from the code, and the code declares every variable it reads.

``docs/configuration.md`` is ``devkit.configuration_page.render()`` written out by ``make docs``;
a variable read by an area module of ``pgmcp_http/config/`` without a declaration (name, default,
description, group) in ``variables.py`` fails here, as does a page not regenerated after a change.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from devkit.configuration_page import PAGE, render
from pgmcp_http.config import GROUPS, VARIABLES

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "pgmcp_http" / "config"
NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$|^PORT$|^THREADS$|^SQLCOMMENTER$")
READERS = {"raw", "secret", "boolean", "integer", "choice", "names", "path", "positive_number", "http_url"}


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


def read_names() -> set[str]:
    return set().union(*(names_read_by(path) for path in CONFIG.glob("*.py") if path.name != "variables.py"))


def test_the_page_is_what_make_docs_writes():
    assert PAGE.read_text(encoding="utf-8") == render(), "docs/configuration.md is stale: run `make docs`"


def test_every_variable_read_is_declared_with_a_description_and_a_group():
    declared = {variable.name for variable in VARIABLES}
    mentioned = " ".join(f"{variable.default} {variable.help}" for variable in VARIABLES)
    undeclared = sorted(name for name in read_names() - declared if f"`{name}`" not in mentioned)
    assert undeclared == [], f"declare these in pgmcp_http/config/variables.py: {undeclared}"
    groups = {group.key for group in GROUPS}
    assert [v.name for v in VARIABLES if not v.help.strip() or v.group not in groups] == []
    assert len(declared) == len(VARIABLES), "a variable is declared twice"


def test_the_scan_finds_what_the_modules_read():
    """The scan itself works: names read through every kind of Reader call are found."""
    found = read_names()
    assert {"DATABASE_URL", "DATABASE_URL_FILE", "READ_ONLY", "MAX_QUERY_COST", "SSL_CA_PATH", "OAUTH_RESOURCE",
            "FEDERATION_URL", "LOG_LEVEL", "PORT", "THREADS", "AWS_DEFAULT_REGION"} <= found


def test_every_declared_variable_is_used():
    """A declaration whose variable nothing reads would document a setting that does nothing."""
    sources = "\n".join(path.read_text() for path in (REPO / "pgmcp_http").rglob("*.py")
                        if path.name != "variables.py")
    # Read by the OpenTelemetry SDK itself from the environment, not by our code.
    by_the_sdk = {"OTEL_TRACES_SAMPLER"}
    unused = [v.name for v in VARIABLES if v.name not in by_the_sdk and f'"{v.name}"' not in sources
              and not (v.name.endswith("_FILE") and f'"{v.name[:-5]}"' in sources)]
    assert unused == []


def test_every_group_is_on_the_page_in_order():
    page = PAGE.read_text(encoding="utf-8")
    headings = [line[3:] for line in page.splitlines() if line.startswith("## ")]
    assert headings == [group.title for group in GROUPS]
    assert all(f"`{variable.name}`" in page for variable in VARIABLES)
