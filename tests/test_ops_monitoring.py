"""monitoring/: the alert rules pass promtool (syntax and replayed outages), and every metric the
rules and the Grafana dashboard read is one the server exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from tests.helpers import REPO, call_tool, scrape

MONITORING = REPO / "monitoring"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan"}
# Series a dashboard panel may read from other exporters, each named in the panel's description.
EXTERNAL = {"up": "Prometheus itself", "ALERTS": "Prometheus itself",
            "pg_stat_database_blks_hit": "postgres_exporter", "pg_stat_database_blks_read": "postgres_exporter",
            "container_fs_reads_bytes_total": "cAdvisor", "container_fs_writes_bytes_total": "cAdvisor"}


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool, installed by scripts/ensure-debian-package.sh when missing (CI runs as root)."""
    if shutil.which("promtool") is None:
        subprocess.run([str(REPO / "scripts" / "ensure-debian-package.sh"), "promtool", "prometheus"], check=True)
    found = shutil.which("promtool")
    assert found, "promtool is missing: run scripts/ensure-debian-package.sh promtool prometheus as root"
    return found


def metric_names(expr: str) -> set[str]:
    """Series names a PromQL expression reads (label matchers, ranges, grouping labels and functions left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        if text[match.end():].lstrip().startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def rule_exprs() -> list[str]:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard() -> dict:
    return json.loads((MONITORING / "grafana-dashboard.json").read_text())  # type: ignore[no-any-return]


def dashboard_exprs() -> list[tuple[dict, str]]:
    return [(panel, target["expr"]) for panel in dashboard()["panels"] for target in panel.get("targets", [])]


def test_metric_names_are_read_from_promql():
    assert metric_names('histogram_quantile(0.95, sum by (job, le) (rate(a_bucket{x="y"}[5m]))) > 5') == {"a_bucket"}
    assert metric_names('a{type="rss"} / ignoring(type) b > 0.85') == {"a", "b"}
    assert metric_names("time() - max by (instance) (c{job=~\"$job\"})") == {"c"}


def test_alert_rules_pass_promtool(promtool):
    checked = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=MONITORING, capture_output=True,
                             text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    replayed = subprocess.run([promtool, "test", "rules", "alerts.test.yml"], cwd=MONITORING, capture_output=True,
                              text=True)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    config = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=MONITORING, capture_output=True,
                            text=True)
    assert config.returncode == 0, config.stdout + config.stderr


def test_the_guides_alerts_are_all_there():
    groups = {group["name"]: {rule["alert"]: rule for rule in group["rules"]}
              for group in yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]}
    assert {"PostgresMCPServerDown", "PostgresDatabaseUnreachable"} <= set(groups["postgres-mcp-critical"])
    assert {"PostgresMCPHighMemoryUsage", "PostgresMCPSlowQueries"} <= set(groups["postgres-mcp-warning"])
    for rules in groups.values():
        for rule in rules.values():
            assert rule["labels"]["severity"] in ("critical", "warning")
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_metric_in_the_rules_and_the_dashboard_is_exported(server):
    call_tool(server, "query", {"sql": "SELECT 1 AS one"})
    exported = {name for name, _ in scrape(server)}
    in_rules = set().union(*(metric_names(expr) for expr in rule_exprs()))
    assert in_rules - {"up"} <= exported, in_rules - exported
    assert "postgres_mcp_query_duration_seconds_bucket" in in_rules  # a histogram is read by its buckets

    for panel, expr in dashboard_exprs():
        foreign = metric_names(expr) - exported
        assert foreign <= set(EXTERNAL), (panel["title"], foreign)
        for name in foreign - {"up", "ALERTS"}:
            assert EXTERNAL[name] in panel["description"], (panel["title"], name)


def test_dashboard_has_the_guides_panels():
    board = dashboard()
    rows = [panel["title"] for panel in board["panels"] if panel["type"] == "row"]
    assert rows == ["Service health", "Database", "Resource usage", "Query analytics", "Alert status"]
    titles = {panel["title"] for panel in board["panels"]}
    for wanted in ("Uptime", "Response time (HTTP)", "Error rates", "Connections", "Query performance",
                   "Cache hit ratio", "CPU", "Memory", "Disk I/O", "Slow queries (over SLOW_QUERY_MS)",
                   "Tool calls by tool and outcome", "Execution plans", "Active alerts"):
        assert wanted in titles, wanted
    assert {var["name"] for var in board["templating"]["list"]} >= {"datasource", "job", "instance"}
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
