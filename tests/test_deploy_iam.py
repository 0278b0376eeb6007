"""The IAM variants of the ECS task and the Cloud Run service: no database password anywhere, validated like
the password variants and accepted by the server's own configuration."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote, urlsplit

import botocore.session
import kubernetes_validate
from botocore.validate import validate_parameters

from pgmcp_http.config import load_settings
from tests.deploy_helpers import KNOWN_VARIABLES, REPO, json_file, yaml_document
from tests.test_deploy_cloudrun import CONTAINER_KEYS, TEMPLATE_ANNOTATIONS, TEMPLATE_SPEC_KEYS


def _shape(service: str, operation: str) -> Any:
    return botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape


def test_ecs_iam_task_is_valid_and_carries_no_database_password():
    task = json_file(REPO / "ecs" / "task-definition-iam.json")
    validate_parameters(task, _shape("ecs", "RegisterTaskDefinition"))
    (container,) = task["containerDefinitions"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert set(env) <= KNOWN_VARIABLES and "DATABASE_URL" not in {s["name"] for s in container["secrets"]}
    assert env["DB_AUTH"] == "aws-iam"
    settings = load_settings({**env, "AUTH_TOKENS": "0123456789abcdef" * 4, "SESSION_SECRET": "s" * 40})
    assert settings.db_auth == "aws-iam" and settings.aws_region == env["AWS_REGION"]
    assert urlsplit(settings.database_url).password is None
    plain = json_file(REPO / "ecs" / "task-definition.json")
    assert {k: v for k, v in task.items() if k not in ("family", "taskRoleArn", "containerDefinitions")} == {
        k: v for k, v in plain.items() if k not in ("family", "taskRoleArn", "containerDefinitions")}


def test_ecs_task_role_policy_allows_connecting_as_the_urls_user_only():
    policy = json_file(REPO / "ecs" / "task-role-rds-iam-policy.json")
    validate_parameters({"PolicyName": "p", "PolicyDocument": json.dumps(policy)}, _shape("iam", "CreatePolicy"))
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "rds-db:connect"
    task = json_file(REPO / "ecs" / "task-definition-iam.json")
    url = {e["name"]: e["value"] for e in task["containerDefinitions"][0]["environment"]}["DATABASE_URL"]
    region = {e["name"]: e["value"] for e in task["containerDefinitions"][0]["environment"]}["AWS_REGION"]
    assert statement["Resource"].startswith(f"arn:aws:rds-db:{region}:")
    assert statement["Resource"].endswith(f"/{urlsplit(url).username}")


def test_cloud_run_iam_service_is_valid_and_uses_the_cloud_sql_socket():
    service = yaml_document(REPO / "cloudrun" / "service-iam.yaml")
    template = service["spec"]["template"]
    assert set(template["spec"]) <= TEMPLATE_SPEC_KEYS
    (container,) = template["spec"]["containers"]
    assert set(container) <= CONTAINER_KEYS
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "iam"}, "spec": {"containers": [container]}}
    kubernetes_validate.validate(pod, kubernetes_validate.utils.latest_version(), strict=True)
    annotations = template["metadata"]["annotations"]
    for key, value in annotations.items():
        assert key in TEMPLATE_ANNOTATIONS and TEMPLATE_ANNOTATIONS[key].fullmatch(value), key
    env = {item["name"]: item for item in container["env"]}
    assert set(env) <= KNOWN_VARIABLES and "valueFrom" not in env["DATABASE_URL"]
    url = env["DATABASE_URL"]["value"]
    settings = load_settings({"DATABASE_URL": url, "DB_AUTH": env["DB_AUTH"]["value"]})
    assert settings.db_auth == "gcp-iam"
    instance = annotations["run.googleapis.com/cloudsql-instances"]
    query = dict(part.split("=", 1) for part in urlsplit(url).query.split("&"))
    assert query["host"] == f"/cloudsql/{instance}"
    user = unquote(urlsplit(url).username or "")
    assert user == template["spec"]["serviceAccountName"].removesuffix(".gserviceaccount.com")
