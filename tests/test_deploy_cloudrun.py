"""cloudrun/service.yaml: every field Cloud Run reads is present, of the right kind, and agrees with the server.

No package ships Knative's Service schema, so: (1) each level of the document
may hold only the fields Cloud Run's Admin API (v1, Knative-shaped) accepts
there, with the values it accepts; (2) the container, which is a Kubernetes
core Container, is validated strictly by kubernetes-validate inside a Pod;
(3) the values are checked against the server (PORT, WEB_CONCURRENCY x THREADS,
gunicorn's graceful timeout against Cloud Run's 10 s).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from typing import Any

import kubernetes_validate

from pgmcp_http.config import load_settings
from tests.deploy_helpers import (
    CLOUD_RUN_KILL_AFTER_S,
    FEDERATION_HTTP_TIMEOUT_S,
    KNOWN_VARIABLES,
    REPO,
    VENV_BIN,
    yaml_document,
)

SERVICE = REPO / "cloudrun" / "service.yaml"
# What Cloud Run accepts at each level (anything else is refused or silently ignored: both are mistakes).
SERVICE_KEYS = {"apiVersion", "kind", "metadata", "spec"}
METADATA_KEYS = {"name", "namespace", "labels", "annotations"}
TEMPLATE_SPEC_KEYS = {"containerConcurrency", "timeoutSeconds", "serviceAccountName", "containers", "volumes",
                      "nodeSelector", "runtimeClassName"}
CONTAINER_KEYS = {"name", "image", "command", "args", "env", "resources", "ports", "volumeMounts", "workingDir",
                  "startupProbe", "livenessProbe", "dependsOn"}
SERVICE_ANNOTATIONS = {"run.googleapis.com/ingress": {"all", "internal", "internal-and-cloud-load-balancing"},
                       "run.googleapis.com/launch-stage": {"ALPHA", "BETA", "GA"},
                       "run.googleapis.com/description": None, "run.googleapis.com/invoker-iam-disabled": None}
TEMPLATE_ANNOTATIONS = {
    "autoscaling.knative.dev/minScale": re.compile(r"\d+"),
    "autoscaling.knative.dev/maxScale": re.compile(r"\d+"),
    "run.googleapis.com/cpu-throttling": re.compile(r"true|false"),
    "run.googleapis.com/startup-cpu-boost": re.compile(r"true|false"),
    "run.googleapis.com/execution-environment": re.compile(r"gen1|gen2"),
    "run.googleapis.com/network-interfaces": re.compile(r"\[.*\]"),
    "run.googleapis.com/vpc-access-egress": re.compile(r"all-traffic|private-ranges-only"),
    "run.googleapis.com/cloudsql-instances": re.compile(r"[\w:,-]+"),
    "run.googleapis.com/sessionAffinity": re.compile(r"true|false"),
}


def _service() -> dict[str, Any]:
    return yaml_document(SERVICE)


def _template() -> dict[str, Any]:
    return _service()["spec"]["template"]  # type: ignore[no-any-return]


def _container() -> dict[str, Any]:
    (container,) = _template()["spec"]["containers"]
    return container


def test_only_fields_cloud_run_reads():
    service = _service()
    assert (service["apiVersion"], service["kind"]) == ("serving.knative.dev/v1", "Service")
    assert set(service) <= SERVICE_KEYS and set(service["metadata"]) <= METADATA_KEYS
    assert re.fullmatch(r"[a-z]([-a-z0-9]{0,47}[a-z0-9])?", service["metadata"]["name"])
    assert set(service["spec"]) == {"template"}
    assert set(_template()) == {"metadata", "spec"}
    assert set(_template()["metadata"]) <= {"annotations", "labels", "name"}
    assert set(_template()["spec"]) <= TEMPLATE_SPEC_KEYS
    assert set(_container()) <= CONTAINER_KEYS, "Cloud Run has no readinessProbe and refuses unknown fields"


def test_annotations_have_values_cloud_run_accepts():
    for key, value in _service()["metadata"]["annotations"].items():
        assert key in SERVICE_ANNOTATIONS and isinstance(value, str), key
        assert SERVICE_ANNOTATIONS[key] is None or value in SERVICE_ANNOTATIONS[key], (key, value)
    annotations = _template()["metadata"]["annotations"]
    for key, value in annotations.items():
        assert key in TEMPLATE_ANNOTATIONS and isinstance(value, str), f"{key}: annotation values are strings"
        assert TEMPLATE_ANNOTATIONS[key].fullmatch(value), (key, value)
    json.loads(annotations["run.googleapis.com/network-interfaces"])
    low, high = annotations["autoscaling.knative.dev/minScale"], annotations["autoscaling.knative.dev/maxScale"]
    assert 1 <= int(low) <= int(high)
    assert annotations["run.googleapis.com/cpu-throttling"] == "false", "CPU always allocated"


def test_container_is_a_valid_kubernetes_container():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cloud-run-container"},
           "spec": {"containers": [_container()]}}
    kubernetes_validate.validate(pod, kubernetes_validate.utils.latest_version(), strict=True)


def test_port_probes_and_secrets():
    container = _container()
    (port,) = container["ports"]
    assert port["name"] in ("http1", "h2c")
    env = {item["name"]: item for item in container["env"]}
    assert "PORT" not in env, "Cloud Run sets PORT (to containerPort) and refuses it in env"
    cloud_run_env = {"DATABASE_URL": "postgresql://u@h/d", "PORT": str(port["containerPort"])}
    assert load_settings(cloud_run_env).port == port["containerPort"], "the server listens where Cloud Run sends"
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/livez", "port": port["containerPort"]}, probe
    for name, item in env.items():
        assert name in KNOWN_VARIABLES, name
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            assert set(ref) == {"name", "key"} and (ref["key"] == "latest" or ref["key"].isdigit()), name
    assert {"DATABASE_URL", "AUTH_TOKENS", "SESSION_SECRET"} <= {n for n, i in env.items() if "valueFrom" in i}
    assert set(container["resources"]) == {"limits"} and {"cpu", "memory"} <= set(container["resources"]["limits"])


def test_concurrency_matches_workers_times_threads_and_shutdown_fits_ten_seconds():
    spec = _template()["spec"]
    env = {item["name"]: item["value"] for item in _container()["env"] if "value" in item}
    env |= {"DATABASE_URL": "postgresql://u@h/d", "AUTH_TOKENS": "0123456789abcdef" * 2}
    settings = load_settings(env)
    assert spec["containerConcurrency"] == settings.workers * settings.threads
    assert settings.require_auth and settings.read_only
    assert spec["timeoutSeconds"] <= FEDERATION_HTTP_TIMEOUT_S
    assert settings.query_timeout_ms < spec["timeoutSeconds"] * 1000
    args = shlex.split(env["GUNICORN_CMD_ARGS"])
    graceful = float(args[args.index("--graceful-timeout") + 1])
    assert graceful < CLOUD_RUN_KILL_AFTER_S


def test_gunicorn_takes_the_graceful_timeout_from_the_environment_over_its_config_file():
    """GUNICORN_CMD_ARGS is read after gunicorn.conf.py, so Cloud Run's value wins there and only there."""
    env = {item["name"]: item["value"] for item in _container()["env"] if "value" in item}
    printed = subprocess.run(
        [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--print-config", "wsgi:app"], cwd=REPO,
        env={"PATH": os.environ["PATH"], "DATABASE_URL": "postgresql://u@h/d",
             "GUNICORN_CMD_ARGS": env["GUNICORN_CMD_ARGS"]},
        capture_output=True, text=True, timeout=60, check=True).stdout
    values = dict(re.findall(r"^(\w+)\s+= (.*)$", printed, re.MULTILINE))
    assert float(values["graceful_timeout"]) < CLOUD_RUN_KILL_AFTER_S
    assert values["bind"] == "['0.0.0.0:3401']", "the rest of gunicorn.conf.py still applies"


def test_readme_has_the_replace_command():
    assert "gcloud run services replace cloudrun/service.yaml" in (REPO / "cloudrun" / "README.md").read_text()
