"""Who is asking: each caller's SQL runs as its own PostgreSQL role, so privileges and RLS apply.

Against the real session cluster and live gunicorn, directly and through
PgBouncer in transaction mode: two callers see different rows of one table;
the catalog tools and resources show each caller only what its role may use;
a role without SELECT gets PostgreSQL's permission error; a role that does not
exist or an unmapped caller under ROLE_REQUIRED is refused before anything
runs; no SQL can leave the role; a superuser login role stops start-up.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
from typing import Any

import pytest

from pgmcp_http.config import ConfigError, load_settings
from pgmcp_http.identity import RolePolicy
from pgmcp_http.sqlguard import GuardPolicy, Refusal
from pgmcp_http.sqlguard.guard import check
from tests.helpers import GUNICORN, REPO, call_tool, modern_rpc, serving, start_server
from tests.identity_fixtures import ANALYST, LOGIN, NOBODY, SUPPORT, TOKENS, IdentityDb, pgbouncer, prepare

ESCAPES = [
    "SET ROLE postgres",
    "SET LOCAL ROLE analyst13",
    "RESET ROLE",
    "SET role TO DEFAULT",
    "SET SESSION AUTHORIZATION postgres",
    "RESET SESSION AUTHORIZATION",
    "RESET ALL",
    "DISCARD ALL",
    "SELECT set_config('role', 'postgres', true)",
    "SELECT pg_catalog.set_config('role', 'support13', false)",
    "SELECT * FROM set_config('role', 'postgres', true)",
    "SELECT set_config('pgmcp.subject', 'bob', true)",
    "SET pgmcp.subject = 'bob'",
    "COMMIT; SET ROLE postgres",
    "DO $$ BEGIN EXECUTE 'SET ROLE postgres'; END $$",
    "SELECT 1; RESET ROLE",
    "PREPARE p AS SELECT 1",
]


@pytest.fixture(scope="module")
def idb(pg, tmp_path_factory) -> IdentityDb:
    return prepare(pg, tmp_path_factory.mktemp("identity"))


@pytest.fixture(scope="module")
def roles_server(idb, tmp_path_factory):
    server = start_server(idb.login_url, tmp_path_factory.mktemp("roles"), workers=2, threads=4,
                          env={"AUTH_TOKENS_FILE": str(idb.tokens_file), "ROLE_REQUIRED": "true",
                               "TOOLS_FILE": str(idb.tools_file)})
    yield server
    server.stop()


def rows(server, who: str, sql: str, params: list[Any] | None = None) -> dict[str, Any]:
    return call_tool(server, "query", {"sql": sql, "params": params or []}, headers=TOKEN_HEADERS[who])


TOKEN_HEADERS = {name: {"Authorization": f"Bearer {token}"} for name, token in TOKENS.items()}


def ids(result: dict[str, Any]) -> list[int]:
    assert not result["isError"], result
    return [row["id"] for row in result["structuredContent"]["rows"]]


def check_callers_see_their_rows(server) -> None:
    assert ids(rows(server, "alice", "SELECT id FROM docs ORDER BY id")) == [1, 2]
    assert ids(rows(server, "bob", "SELECT id FROM docs ORDER BY id")) == [3, 4]
    assert ids(rows(server, "carol", "SELECT id FROM docs ORDER BY id")) == [1, 3, 5]
    in_eu = {who: ids(call_tool(server, "docs_in_region", {"region": "eu"}, headers=TOKEN_HEADERS[who]))
             for who in ("alice", "bob", "carol")}
    assert in_eu == {"alice": [1], "bob": [3], "carol": [1, 3, 5]}  # a custom tool: same SQL, other rows
    who = rows(server, "alice", "SELECT current_user AS role, whoami() AS subject, "
                                "current_setting('pgmcp.claims', true)::jsonb AS claims")
    assert who["structuredContent"]["rows"] == [{"role": ANALYST, "subject": "alice",
                                                 "claims": {"role": ANALYST, "sub": "alice"}}]


def check_refusals(server) -> None:
    denied = rows(server, "dave", "SELECT id FROM docs")
    assert denied["isError"] and "permission denied for table docs" in denied["content"][0]["text"]
    ghost = rows(server, "erin", "SELECT 1 AS one")
    text = ghost["content"][0]["text"]
    assert ghost["isError"] and "cannot act as database role ghost13 for caller erin" in text
    assert 'role "ghost13" does not exist' in text and "nothing was run" in text
    unmapped = rows(server, "frank", "SELECT 1 AS one")
    assert unmapped["isError"] and "ROLE_REQUIRED=true" in unmapped["content"][0]["text"]


def test_two_callers_see_different_rows_and_who_they_are(roles_server):
    check_callers_see_their_rows(roles_server)


def test_refusals_are_clear_and_nothing_runs_as_the_login_role(roles_server):
    check_refusals(roles_server)


@pytest.mark.parametrize("sql", ESCAPES)
def test_no_sql_leaves_the_role(roles_server, sql):
    result = rows(roles_server, "alice", sql)
    assert result["isError"] and result["content"][0]["text"].startswith("refused:"), result


@pytest.mark.parametrize("sql", ["UPDATE pg_settings SET setting = 'postgres' WHERE name = 'role'",
                                 "WITH s AS (UPDATE pg_catalog.pg_settings SET setting = 'x' WHERE name = 'role' "
                                 "RETURNING 1) SELECT * FROM s"])
def test_writing_pg_settings_is_refused_in_write_mode(sql):
    policy = GuardPolicy(read_only=False)
    with pytest.raises(Refusal, match="system catalog"):
        check(sql, policy)


def test_catalog_tools_and_resources_show_what_the_role_may_use(roles_server):
    def tables(who: str) -> set[str]:
        result = call_tool(roles_server, "list_tables", {}, headers=TOKEN_HEADERS[who])
        return {entry["name"] for entry in result["structuredContent"]["tables"]}

    assert {"docs", "analyst_notes"} <= tables("alice")
    assert "docs" in tables("carol") and "analyst_notes" not in tables("carol")
    assert tables("dave") == set()
    described = call_tool(roles_server, "describe_table", {"table_name": "analyst_notes"},
                          headers=TOKEN_HEADERS["carol"])
    assert described["isError"] and "no table or view named public.analyst_notes" in described["content"][0]["text"]
    assert not call_tool(roles_server, "describe_table", {"table_name": "analyst_notes"},
                         headers=TOKEN_HEADERS["alice"])["isError"]

    def resources(who: str) -> set[str]:
        reply = modern_rpc(roles_server.url, "resources/list", {}, headers=TOKEN_HEADERS[who])
        return {entry["uri"] for entry in reply.body["result"]["resources"]}

    assert "postgres://table/public/analyst_notes" in resources("alice")
    assert "postgres://table/public/analyst_notes" not in resources("carol")
    read = modern_rpc(roles_server.url, "resources/read", {"uri": "postgres://table/public/analyst_notes"},
                      headers=TOKEN_HEADERS["carol"])
    assert read.body["error"]["code"] == -32002
    refused = modern_rpc(roles_server.url, "resources/read", {"uri": "postgres://table/public/docs"},
                         headers=TOKEN_HEADERS["frank"])
    assert "ROLE_REQUIRED=true" in refused.body["error"]["message"]


def test_the_role_holds_in_every_transaction_under_concurrency(roles_server):
    expected = {"alice": [1, 2], "bob": [3, 4], "carol": [1, 3, 5]}
    calls = [name for name in expected for _ in range(20)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        seen = list(pool.map(lambda who: (who, ids(rows(roles_server, who, "SELECT id FROM docs ORDER BY id"))),
                             calls))
    assert all(found == expected[who] for who, found in seen)


@pytest.mark.parametrize("mapping", ["tokens file", "OAuth role claim"])
def test_a_superuser_login_role_with_a_mapping_stops_start_up(idb, tmp_path, mapping):
    """Any way of giving callers roles (token entries, DEFAULT_ROLE, a JWT or OAuth role claim) makes a login role
    that reads past them a start-up error."""
    env = {"DATABASE_URL": idb.superuser_url, "PORT": "1", "BIND_HOST": "127.0.0.1", "SESSION_SECRET": "x" * 40}
    if mapping == "tokens file":
        env["AUTH_TOKENS_FILE"] = str(idb.tokens_file)
    else:  # the issuer is never asked: the login role is checked before any token arrives
        env.update({"OAUTH_RESOURCE": "http://127.0.0.1:1/mcp", "OAUTH_ISSUERS": "http://127.0.0.1:2",
                    "ROLE_CLAIM": "db_role", "ALLOWED_ROLES": ANALYST})
    proc = subprocess.run([str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    line = next(line for line in proc.stderr.splitlines() if "configuration error" in line)
    assert "the login role postgres is a superuser" in line and "NOINHERIT" in line and f"GRANT {ANALYST}" in line


def test_token_files_in_every_form(tmp_path):
    base = {"DATABASE_URL": "postgresql://u@localhost/db"}
    plain = tmp_path / "plain"
    plain.write_text("# two tokens\n" + "p" * 20 + "\n" + "q" * 20 + "  # a comment\n")
    settings = load_settings({**base, "AUTH_TOKENS_FILE": str(plain)})
    assert settings.auth_tokens == ("p" * 20, "q" * 20) and settings.auth_entries == ()
    named = tmp_path / "named.json"
    named.write_text(json.dumps({"ci-bot": "t" * 24, "ana@example.com": {"sha256": "ab" * 32, "role": "Analyst"}}))
    settings = load_settings({**base, "AUTH_TOKENS_FILE": str(named), "DEFAULT_ROLE": "reader"})
    assert [(e.name, e.role) for e in settings.auth_entries] == [("ci-bot", None), ("ana@example.com", "Analyst")]
    assert "t" * 24 in settings.secret_values()
    for content, fragment in [("x: {token: short}", "at least 16"), ("x: {sha256: nothex}", "64 hex digits"),
                              ("anonymous: " + "t" * 20, "not 'anonymous'"),
                              ("x: {token: " + "t" * 20 + ", sha256: " + "a" * 64 + "}", "exactly one"),
                              ("a: " + "t" * 20 + "\nb: " + "t" * 20, "two callers")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(content)
        with pytest.raises(ConfigError, match=fragment):
            load_settings({**base, "AUTH_TOKENS_FILE": str(bad)})
    with pytest.raises(ConfigError, match="ROLE_REQUIRED=true but no role"):
        load_settings({**base, "ROLE_REQUIRED": "true"})


def test_role_policy_resolution():
    policy = RolePolicy(default_role="reader", required=True, mapped=True, roles=("reader",))
    assert policy.caller("alice", "analyst").role == "analyst"
    assert policy.caller("bob").role == "reader" and policy.caller("bob").refusal is None
    strict = RolePolicy(required=True, mapped=True)
    assert "ROLE_REQUIRED=true" in (strict.caller("bob").refusal or "")
    assert RolePolicy().caller("anonymous").claims_json == '{"sub":"anonymous"}'
    assert not RolePolicy().caller("anonymous").identifies and RolePolicy().caller("ci").identifies


# -- the same through PgBouncer in transaction mode ------------------------------------------------

@pytest.fixture(scope="module")
def bounced_server(pg, idb, tmp_path_factory):
    with pgbouncer(pg, user=LOGIN, password=idb.login_password) as port:
        url = f"postgresql://{LOGIN}:{idb.login_password}@127.0.0.1:{port}/identity_db"
        server = start_server(url, tmp_path_factory.mktemp("bouncer13"), workers=2, threads=4,
                              env={"AUTH_TOKENS_FILE": str(idb.tokens_file), "ROLE_REQUIRED": "true",
                                   "TOOLS_FILE": str(idb.tools_file)})
        yield server
        server.stop()


def test_through_pgbouncer_transaction_mode(bounced_server):
    check_callers_see_their_rows(bounced_server)
    check_refusals(bounced_server)
    for sql in ("RESET ROLE", "SELECT set_config('role', 'postgres', false)", "SET SESSION AUTHORIZATION postgres"):
        assert rows(bounced_server, "alice", sql)["isError"]
    # Two backends shared by every caller: a role or subject left behind would show up here.
    expected = {"alice": [1, 2], "bob": [3, 4], "carol": [1, 3, 5]}
    calls = [name for name in expected for _ in range(15)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        seen = list(pool.map(lambda who: (who, ids(rows(bounced_server, who, "SELECT id FROM docs ORDER BY id"))),
                             calls))
    assert all(found == expected[who] for who, found in seen)
    assert SUPPORT and NOBODY  # the roles the callers map to exist in the pooled database too


# -- callers from JWTs ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jwt_server(idb, tmp_path_factory):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    workdir = tmp_path_factory.mktemp("jwt13")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = workdir / "jwt.pem"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    server = start_server(idb.login_url, workdir, workers=1, threads=4,
                          env={"JWT_KEY_FILE": str(public), "JWT_AUDIENCE": "pgmcp", "JWT_ISSUER": "https://idp.test",
                               "ROLE_CLAIM": "db_role", "ALLOWED_ROLES": f"{ANALYST},{SUPPORT}",
                               "ROLE_REQUIRED": "true", "REQUIRE_AUTH": "true"})
    yield server, key
    server.stop()


def signed(key: Any, **claims: Any) -> dict[str, str]:
    import time

    import jwt

    body = {"iss": "https://idp.test", "aud": "pgmcp", "exp": int(time.time()) + 600, **claims}
    return {"Authorization": f"Bearer {jwt.encode(body, key, algorithm='RS256')}"}


def test_jwt_callers_get_their_subject_and_role(jwt_server):
    server, key = jwt_server
    alice = signed(key, sub="alice", db_role=ANALYST, team="blue")
    result = call_tool(server, "query", {"sql": "SELECT id, current_user AS role, whoami() AS subject, "
                                                "current_setting('pgmcp.claims', true)::jsonb ->> 'team' AS team "
                                                "FROM docs ORDER BY id"}, headers=alice)
    assert result["structuredContent"]["rows"] == [{"id": 1, "role": ANALYST, "subject": "alice", "team": "blue"},
                                                   {"id": 2, "role": ANALYST, "subject": "alice", "team": "blue"}]
    carol = signed(key, sub="carol", db_role=SUPPORT)
    assert ids(call_tool(server, "query", {"sql": "SELECT id FROM docs ORDER BY id"}, headers=carol)) == [1, 3, 5]
    mallory = call_tool(server, "query", {"sql": "SELECT 1"}, headers=signed(key, sub="mallory", db_role="postgres"))
    assert mallory["isError"] and "not in ALLOWED_ROLES" in mallory["content"][0]["text"]
    unmapped = call_tool(server, "query", {"sql": "SELECT 1"}, headers=signed(key, sub="nora"))
    assert unmapped["isError"] and "ROLE_REQUIRED=true" in unmapped["content"][0]["text"]


def test_invalid_jwts_get_401(jwt_server):
    import time

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.helpers import request

    server, key = jwt_server
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad = [signed(key, sub="alice", exp=int(time.time()) - 3600), signed(key, sub="alice", aud="elsewhere"),
           signed(key, sub="alice", iss="https://evil.test"), signed(other, sub="alice"),
           {"Authorization": "Bearer " + jwt.encode({"sub": "alice", "aud": "pgmcp", "iss": "https://idp.test",
                                                     "exp": int(time.time()) + 600}, "x" * 40, algorithm="HS256")},
           signed(key, db_role=ANALYST)]  # no subject
    for headers in bad:
        status, _, _ = request("POST", f"{server.base}/mcp/tools/call",
                               {"name": "query", "arguments": {"sql": "SELECT 1"}},
                               headers={"Content-Type": "application/json", **headers})
        assert status == 401, headers


def test_jwt_settings_are_checked(tmp_path):
    base = {"DATABASE_URL": "postgresql://u@localhost/db"}
    pem = tmp_path / "key.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n")
    secret = tmp_path / "secret"
    secret.write_text("s" * 40)
    for env, fragment in [({"JWT_KEY_FILE": str(pem)}, "JWT_AUDIENCE is not"),
                          ({"JWT_KEY_FILE": str(pem), "JWT_AUDIENCE": "a", "ROLE_CLAIM": "r"}, "ALLOWED_ROLES is not"),
                          ({"JWT_KEY_FILE": str(pem), "JWT_AUDIENCE": "a", "JWT_ALGORITHMS": "HS256"}, "HMAC secret"),
                          ({"JWT_KEY_FILE": str(secret), "JWT_AUDIENCE": "a"}, "PEM public key"),
                          ({"JWT_KEY_FILE": str(pem), "JWT_AUDIENCE": "a", "JWT_ALGORITHMS": "none"}, "not one of"),
                          ({"ROLE_CLAIM": "r"}, "neither JWT_KEY_FILE nor OAUTH_RESOURCE is")]:
        with pytest.raises(ConfigError, match=fragment):
            load_settings({**base, **env})
    hmac = load_settings({**base, "JWT_KEY_FILE": str(secret), "JWT_AUDIENCE": "a", "JWT_ALGORITHMS": "HS256",
                          "REQUIRE_AUTH": "true"})
    assert hmac.jwt is not None and "s" * 40 in hmac.secret_values()


@pytest.fixture(scope="module")
def optional_roles_server(idb, tmp_path_factory):
    """Roles mapped but not required: frank, with no role of his own, runs as the NOINHERIT login role."""
    with serving(idb.login_url, tmp_path_factory.mktemp("roles-optional"), workers=1, threads=2,
                 env={"AUTH_TOKENS_FILE": str(idb.tokens_file)}) as server:
        yield server


def test_a_caller_on_the_login_role_sees_only_what_the_login_role_may_use(optional_roles_server):
    """The login role may read docs (granted for TOOLS_FILE) but not analyst_notes; frank runs as it and
    must not learn analyst_notes exists, from any catalog view, while alice (analyst) still sees it."""
    server, frank, alice = optional_roles_server, TOKEN_HEADERS["frank"], TOKEN_HEADERS["alice"]
    assert rows(server, "frank", "SELECT current_user AS who")["structuredContent"]["rows"] == [{"who": LOGIN}]
    listed = call_tool(server, "list_tables", {}, headers=frank)
    assert {entry["name"] for entry in listed["structuredContent"]["tables"]} == {"docs"}
    described = call_tool(server, "describe_table", {"table_name": "analyst_notes"}, headers=frank)
    assert described["isError"] and "no table or view named public.analyst_notes" in described["content"][0]["text"]
    uris = {entry["uri"] for entry in modern_rpc(server.url, "resources/list", {}, headers=frank)
            .body["result"]["resources"]}
    assert "postgres://table/public/docs" in uris and "postgres://table/public/analyst_notes" not in uris
    read = modern_rpc(server.url, "resources/read", {"uri": "postgres://table/public/analyst_notes"}, headers=frank)
    assert read.body["error"]["code"] == -32002
    ref = {"type": "ref/resource", "uri": "postgres://table/{schema}/{table}"}
    completed = modern_rpc(server.url, "completion/complete",
                           {"ref": ref, "argument": {"name": "table", "value": ""},
                            "context": {"arguments": {"schema": "public"}}}, headers=frank)
    assert completed.body["result"]["completion"]["values"] == ["docs"]
    alice_uris = {entry["uri"] for entry in modern_rpc(server.url, "resources/list", {}, headers=alice)
                 .body["result"]["resources"]}
    assert "postgres://table/public/analyst_notes" in alice_uris
    alice_tables = call_tool(server, "list_tables", {}, headers=alice)["structuredContent"]["tables"]
    assert {"docs", "analyst_notes"} <= {entry["name"] for entry in alice_tables}


def test_describing_a_table_names_only_what_the_callers_role_may_use(optional_roles_server):
    """docs is referenced by analyst_refs and inherited by analyst_docs, both for analysts only."""
    def described(who: str) -> dict[str, Any]:
        result = call_tool(optional_roles_server, "describe_table", {"table_name": "docs"},
                           headers=TOKEN_HEADERS[who])
        assert not result["isError"], result
        return result["structuredContent"]

    frank, alice = described("frank"), described("alice")
    assert frank["referenced_by"] == []
    assert frank["inheritance"] == {"parents": [], "children": [], "hidden": 1}
    assert [ref["table"] for ref in alice["referenced_by"]] == ["analyst_refs"]
    assert alice["inheritance"]["children"] == [{"schema": "public", "name": "analyst_docs"}]
    health = call_tool(optional_roles_server, "database_health", {}, headers=TOKEN_HEADERS["frank"])
    assert not health["isError"] and "analyst_notes" not in json.dumps(health["structuredContent"])
