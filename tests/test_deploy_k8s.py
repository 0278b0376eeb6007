"""k8s/: every manifest validates against Kubernetes' own schemas, and the pieces agree with each other.

kubernetes-validate (PyPI, ships the OpenAPI-derived schemas of each release)
checks each core resource strictly (unknown fields are errors). The
ServiceMonitor is a Prometheus Operator resource it has no schema for; its
fields are checked against the Service and Secret it points at instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from pgmcp_http.config import Settings, load_settings
from tests.deploy_helpers import REPO, graceful_timeout_s, yaml_document, yaml_documents

K8S = REPO / "k8s"
CORE_MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name not in ("kustomization.yaml", "servicemonitor.yaml"))
KUBERNETES_VERSION = "1.30.0"  # the oldest release still supported by the major clouds' managed Kubernetes


def _by_kind(kind: str) -> dict[str, Any]:
    found = [doc for path in CORE_MANIFESTS for doc in yaml_documents(path) if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _container() -> dict[str, Any]:
    (container,) = _by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("path", CORE_MANIFESTS, ids=lambda p: p.name)
@pytest.mark.parametrize("version", [KUBERNETES_VERSION, kubernetes_validate.utils.latest_version()])
def test_manifest_is_valid_kubernetes(path: Path, version: str):
    for doc in yaml_documents(path):
        kubernetes_validate.validate(doc, version, strict=True)
        assert doc["metadata"].get("namespace", "tas-mcp") == "tas-mcp" or doc["kind"] == "Namespace"


def test_kustomization_lists_every_manifest_but_the_examples():
    listed = set(yaml_document(K8S / "kustomization.yaml")["resources"])
    assert listed == {p.name for p in CORE_MANIFESTS} - {"secret.example.yaml"}


def test_probes_liveness_never_asks_the_database(tmp_path):
    container = _container()
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    settings = _pod_settings(tmp_path)
    assert container["readinessProbe"]["timeoutSeconds"] * 1000 > settings.health_check_timeout_ms
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": settings.port}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ports


def test_non_root_read_only_root_with_tmp_in_memory():
    pod = _by_kind("Deployment")["spec"]["template"]["spec"]
    container = _container()
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] >= 10000
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/tmp"]]["emptyDir"]["medium"] == "Memory"
    writable = [path for path, name in mounts.items() if "emptyDir" in volumes[name]]
    assert writable == ["/tmp"], "the only writable place is /tmp (HOME and TMPDIR in the image)"
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])


def test_grace_period_covers_prestop_and_gunicorns_graceful_timeout():
    pod = _by_kind("Deployment")["spec"]["template"]["spec"]
    pre_stop = _container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[:2] == ["python", "-c"], "no shell or sleep binary is needed in the image"
    sleep_s = float(pre_stop[2].rsplit("sleep(", 1)[1].rstrip(")"))
    assert pod["terminationGracePeriodSeconds"] > sleep_s + graceful_timeout_s()


def _environment() -> dict[str, str]:
    """The environment the pod starts with: the ConfigMap, the env list, the example Secret's files."""
    config = _by_kind("ConfigMap")["data"]
    secret = _by_kind("Secret")["stringData"]
    env = dict(config)
    mount = next(m["mountPath"] for m in _container()["volumeMounts"] if m["name"] == "secrets")
    for item in _container()["env"]:
        env[item["name"]] = item["value"]
    assert {env[name] for name in env if name.endswith("_FILE")} == {f"{mount}/{key}" for key in secret}
    return env


def _pod_settings(tmp_path: Path) -> Settings:
    """What the server makes of the pod's environment, the example Secret's files written out."""
    env = _environment()
    secret = _by_kind("Secret")["stringData"]
    for name in [n for n in env if n.endswith("_FILE")]:
        key = env[name].rsplit("/", 1)[1]
        target = tmp_path / key
        target.write_text(secret[key].replace("REPLACE_ME_WITH_openssl_rand_hex_32", "0123456789abcdef" * 4))
        env[name] = str(target)
    return load_settings(env)


def test_the_pod_configuration_is_accepted_by_the_server(tmp_path):
    settings = _pod_settings(tmp_path)
    assert settings.require_auth and settings.read_only and settings.auth_tokens
    assert settings.query_timeout_ms < graceful_timeout_s() * 1000
    assert settings.connections_per_worker * settings.workers == settings.max_connections


def test_service_pdb_hpa_and_policy_select_the_pods():
    labels = _by_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    for kind, selector in (("Service", _by_kind("Service")["spec"]["selector"]),
                           ("PodDisruptionBudget", _by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]),
                           ("NetworkPolicy", _by_kind("NetworkPolicy")["spec"]["podSelector"]["matchLabels"])):
        assert selector.items() <= labels.items(), kind
    target = _by_kind("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", _by_kind("Deployment")["metadata"]["name"])
    assert _by_kind("HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2, "so the PDB can allow one disruption"


def test_network_policy_admits_the_federation_and_lets_out_postgresql_and_dns_only():
    policy = _by_kind("NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    sources = [peer["podSelector"]["matchLabels"] for rule in policy["ingress"] for peer in rule["from"]]
    assert {"app": "tas-mcp-federation"} in sources
    assert all(port["port"] == 3401 for rule in policy["ingress"] for port in rule["ports"])
    egress_ports = {(port["protocol"], port["port"]) for rule in policy["egress"] for port in rule["ports"]}
    assert egress_ports == {("TCP", 5432), ("UDP", 53), ("TCP", 53)}


def test_service_monitor_points_at_the_service_port_and_the_metrics_token():
    monitor = yaml_document(K8S / "servicemonitor.yaml")
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    service = _by_kind("Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    credentials = endpoint["authorization"]["credentials"]
    assert credentials["name"] == _by_kind("Secret")["metadata"]["name"]
    assert credentials["key"] in _by_kind("Secret")["stringData"]
    assert endpoint["authorization"]["type"] == "Bearer"
    # The alert rules select job="postgres-mcp-server": the job label comes from the Service's `app` label.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "postgres-mcp-server"
    assert 'job="postgres-mcp-server"' in (REPO / "monitoring" / "alerts.yml").read_text()
