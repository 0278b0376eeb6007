"""The package holds what the server runs: every module of pgmcp_http/ is reached from the entry points.

Development and test scaffolding (the throwaway PostgreSQL and PgBouncer) lives in ``devkit/``;
a module that only the tests or the benchmarks import belongs there or beside them, not in the
package the image ships.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "pgmcp_http"
ENTRY_POINTS = (REPO / "wsgi.py", REPO / "gunicorn.conf.py")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_names(path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules ``path`` imports, with the packages each import loads on the way."""
    here = module_name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    found: set[str] = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    typing_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
                   for statement in node.body for inner in ast.walk(statement)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # `if TYPE_CHECKING:` imports never run
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                prefix = here[: len(here) - node.level + 1]
                base = ".".join([*prefix, base] if base else prefix)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            parts = target.split(".")
            found.update(".".join(parts[:n]) for n in range(1, len(parts) + 1) if ".".join(parts[:n]) in known)
    return found


def named_in_strings(path: Path, known: dict[str, Path]) -> set[str]:
    """Modules named by dotted strings, as gunicorn's ``worker_class = "pgmcp_http.serving.worker.X"``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("pgmcp_http."):
            parts = node.value.split(".")
            found.update(".".join(parts[:n]) for n in range(1, len(parts) + 1) if ".".join(parts[:n]) in known)
    return found


def reachable() -> set[str]:
    known = package_modules()
    seen: set[str] = set()
    todo = [name for entry in ENTRY_POINTS for name in imported_names(entry, known) | named_in_strings(entry, known)]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(imported_names(known[name], known))
    return seen


def test_every_module_in_the_package_is_reached_from_the_entry_points():
    unused = sorted(set(package_modules()) - reachable())
    assert unused == [], f"imported only by tests, bench or nothing: move to devkit/ or tests/: {unused}"


def test_the_walk_sees_real_imports():
    """Guard against a walker that finds nothing: the app, the guard and the pool are reached."""
    seen = reachable()
    assert {"pgmcp_http.app", "pgmcp_http.sqlguard.guard", "pgmcp_http.db.pool", "pgmcp_http.config",
            "pgmcp_http.serving.worker"} <= seen


def test_the_module_map_names_every_module():
    """docs/development.md's module map is how a reader finds a feature: a new module gets its line there."""
    page = (REPO / "docs" / "development.md").read_text(encoding="utf-8")
    missing = [str(path.relative_to(PACKAGE)) for path in sorted(PACKAGE.rglob("*.py"))
               if path.name != "__init__.py" and f"`{path.name}`" not in page and
               f"`{path.relative_to(PACKAGE)}`" not in page]
    assert missing == []


def test_the_configuration_imports_nothing_from_the_rest_of_the_server():
    """architecture.md's wall: everything else receives a Settings; config/ depends on no other layer."""
    known = package_modules()
    outside = {name: sorted(other for other in imported_names(path, known)
                            if other != "pgmcp_http" and not other.startswith("pgmcp_http.config"))
               for name, path in known.items() if name.startswith("pgmcp_http.config")}
    assert {name: found for name, found in outside.items() if found} == {}
