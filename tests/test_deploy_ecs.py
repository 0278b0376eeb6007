"""ecs/: each file is the input of one AWS API call, validated by botocore against that call's model.

``botocore.validate.validate_parameters`` is what the AWS CLI runs on
``--cli-input-json`` before sending anything: unknown keys, wrong types and
missing required members fail here as they would there. What the model does
not encode (Fargate's CPU/memory pairs, health check ranges, the stop
timeout's ceiling) is checked against the documented limits, and the files
against each other and the server's configuration.
"""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters

from pgmcp_http.config import load_settings
from tests.deploy_helpers import (
    FARGATE_MAX_STOP_TIMEOUT_S,
    KNOWN_VARIABLES,
    REPO,
    graceful_timeout_s,
    healthcheck_command,
    json_file,
)

ECS = REPO / "ecs"
CALLS = [
    ("task-definition.json", "ecs", "RegisterTaskDefinition"),
    ("service-definition.json", "ecs", "CreateService"),
    ("target-group.json", "elbv2", "CreateTargetGroup"),
    ("target-group-attributes.json", "elbv2", "ModifyTargetGroupAttributes"),
]
# Fargate task sizes: CPU units -> allowed memory (MiB).
FARGATE_SIZES = {
    256: {512, 1024, 2048},
    512: set(range(1024, 4097, 1024)),
    1024: set(range(2048, 8193, 1024)),
    2048: set(range(4096, 16385, 1024)),
    4096: set(range(8192, 30721, 1024)),
}


def _input_shape(service: str, operation: str) -> Any:
    return botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape


@pytest.mark.parametrize(("name", "service", "operation"), CALLS, ids=[c[0] for c in CALLS])
def test_file_is_valid_input_of_its_aws_call(name: str, service: str, operation: str):
    validate_parameters(json_file(ECS / name), _input_shape(service, operation))
    assert f"file://ecs/{name}" in (ECS / "README.md").read_text(), "the README shows the command that uses it"


def test_the_validator_does_catch_a_mistake():
    broken = json_file(ECS / "task-definition.json")
    broken["containerDefinitions"][0]["healthCheck"]["interval"] = "30s"
    with pytest.raises(ParamValidationError):
        validate_parameters(broken, _input_shape("ecs", "RegisterTaskDefinition"))


def _task() -> dict[str, Any]:
    return json_file(ECS / "task-definition.json")


def _container() -> dict[str, Any]:
    (container,) = _task()["containerDefinitions"]
    return container


def test_fargate_size_and_stop_timeout():
    task = _task()
    assert task["requiresCompatibilities"] == ["FARGATE"] and task["networkMode"] == "awsvpc"
    assert int(task["memory"]) in FARGATE_SIZES[int(task["cpu"])]
    stop = _container()["stopTimeout"]
    assert graceful_timeout_s() < stop <= FARGATE_MAX_STOP_TIMEOUT_S


def test_container_health_check_is_the_images_liveness_check():
    check = _container()["healthCheck"]
    assert check["command"] == ["CMD", *healthcheck_command()]
    assert 5 <= check["interval"] <= 300 and 2 <= check["timeout"] <= 60
    assert 1 <= check["retries"] <= 10 and 0 <= check["startPeriod"] <= 300


def test_non_root_read_only_root_and_tmp_on_a_task_volume():
    container = _container()
    assert container["readonlyRootFilesystem"] is True and container["privileged"] is False
    uid = int(container["user"].split(":")[0])
    assert uid >= 10000
    assert container["linuxParameters"]["capabilities"]["drop"] == ["ALL"]
    assert container["mountPoints"] == [{"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}]
    assert {"name": "tmp"} in _task()["volumes"]


def test_secrets_come_from_secrets_manager_and_logs_go_to_cloudwatch():
    container = _container()
    for secret in container["secrets"]:
        assert secret["valueFrom"].startswith("arn:aws:secretsmanager:"), secret["name"]
    names = {s["name"] for s in container["secrets"]}
    assert {"DATABASE_URL", "AUTH_TOKENS", "SESSION_SECRET"} <= names
    assert not names & {e["name"] for e in container["environment"]}
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    assert {"awslogs-group", "awslogs-region", "awslogs-stream-prefix"} <= set(container["logConfiguration"]["options"])


def test_the_task_configuration_is_accepted_by_the_server():
    container = _container()
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert set(env) | {s["name"] for s in container["secrets"]} <= KNOWN_VARIABLES
    env.update(DATABASE_URL="postgresql://mcp_readonly:pw@db.internal:5432/app", AUTH_TOKENS="0123456789abcdef" * 4,
               SESSION_SECRET="s" * 40, METRICS_TOKEN="m" * 32)
    settings = load_settings(env)
    assert settings.require_auth and settings.read_only
    assert settings.query_timeout_ms < graceful_timeout_s() * 1000
    (mapping,) = container["portMappings"]
    assert mapping["containerPort"] == settings.port


def test_service_routes_to_the_container_through_a_target_group_on_the_readiness_path():
    service = json_file(ECS / "service-definition.json")
    group = json_file(ECS / "target-group.json")
    (balancer,) = service["loadBalancers"]
    assert balancer["containerName"] == _container()["name"]
    assert balancer["containerPort"] == _container()["portMappings"][0]["containerPort"] == group["Port"]
    assert service["taskDefinition"] == _task()["family"]
    assert group["HealthCheckPath"] == "/readyz" and group["TargetType"] == "ip"
    assert group["HealthCheckTimeoutSeconds"] * 1000 > load_settings(
        {"DATABASE_URL": "postgresql://u@h/d"}).health_check_timeout_ms
    attributes = json_file(ECS / "target-group-attributes.json")
    assert attributes["TargetGroupArn"] == balancer["targetGroupArn"]
    delay = {a["Key"]: a["Value"] for a in attributes["Attributes"]}["deregistration_delay.timeout_seconds"]
    assert int(delay) <= 60, "the default 300 s keeps a stopping task around for five minutes"
    assert service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
    assert service["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
