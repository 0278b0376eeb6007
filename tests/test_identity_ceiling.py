"""The cost ceiling under a caller's role: the plan is made in the caller's role-switched transaction,
with the caller's parameters."""

from __future__ import annotations

import pytest

from tests.helpers import call_tool, start_server
from tests.identity_fixtures import TOKENS, prepare

COSTLY = "SELECT count(*) FROM docs a, docs b, generate_series(1, $1) g"


@pytest.fixture(scope="module")
def ceiling_roles_server(pg, tmp_path_factory):
    idb = prepare(pg, tmp_path_factory.mktemp("identity-ceiling"))
    server = start_server(idb.login_url, tmp_path_factory.mktemp("ceiling-roles"), workers=1, threads=2,
                          env={"AUTH_TOKENS_FILE": str(idb.tokens_file), "ROLE_REQUIRED": "true",
                               "MAX_QUERY_COST": "20000"})
    yield server
    server.stop()


def call(server, who: str, sql: str, params: list[object]) -> dict[str, object]:
    return call_tool(server, "query", {"sql": sql, "params": params},
                     headers={"Authorization": f"Bearer {TOKENS[who]}"})


def test_the_ceiling_holds_with_parameters_under_the_callers_role(ceiling_roles_server):
    refused = call(ceiling_roles_server, "alice", COSTLY, [1_000_000])
    assert refused["isError"] is True
    assert "refused before running" in refused["content"][0]["text"]
    assert "above MAX_QUERY_COST=20000" in refused["content"][0]["text"]
    cheap = call(ceiling_roles_server, "alice", COSTLY, [1])  # the same text, a small parameter: planned, allowed
    assert cheap["isError"] is False
    assert cheap["structuredContent"]["rows"] == [{"count": 4}]  # alice sees her 2 rows under RLS: 2 x 2 x 1


def test_the_plan_is_made_as_the_callers_role(ceiling_roles_server):
    """dave's role may not read docs: planning as that role fails, so no plan was made as the login role."""
    denied = call(ceiling_roles_server, "dave", COSTLY, [1])
    assert denied["isError"] is True and "permission denied for table docs" in denied["content"][0]["text"]
