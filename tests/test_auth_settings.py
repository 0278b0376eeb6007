"""OAUTH_* settings: read once, refused with one line naming the variable; and the pure pieces they feed."""

from __future__ import annotations

import pytest

from pgmcp_http.auth.challenges import bearer_challenge
from pgmcp_http.auth.keysets import discovery_urls
from pgmcp_http.auth.resource import metadata_paths, metadata_url
from pgmcp_http.auth.scopes import ScopePolicy
from pgmcp_http.config import ConfigError, load_settings

BASE = {"DATABASE_URL": "postgresql://u@localhost/db", "OAUTH_RESOURCE": "https://db.example.com/mcp",
        "OAUTH_ISSUERS": "https://login.example.com/"}


def settings(**env: str):
    return load_settings({**BASE, **env})


def test_defaults():
    oauth = settings().oauth
    assert oauth is not None
    assert oauth.issuers == ("https://login.example.com/",)  # kept byte for byte, trailing slash included
    assert oauth.scopes == ("db.schema", "db.read") and oauth.algorithms == ("RS256", "ES256", "PS256")
    assert oauth.token_types == ("at+jwt", "application/at+jwt") and oauth.jwks_cache_s == 600
    assert settings().auth_configured and settings(REQUIRE_AUTH="true").require_auth


@pytest.mark.parametrize(("env", "fragment"), [
    ({"OAUTH_RESOURCE": "https://DB.example.com/mcp"}, "OAUTH_RESOURCE: 'https://DB.example.com/mcp': write the"),
    ({"OAUTH_RESOURCE": "HTTPS://db.example.com/mcp"}, "lower case"),
    ({"OAUTH_RESOURCE": "https://db.example.com/mcp/"}, "must not end with a slash"),
    ({"OAUTH_RESOURCE": "https://db.example.com/mcp?tenant=1"}, "query or a fragment"),
    ({"OAUTH_RESOURCE": "https://db.example.com/mcp#x"}, "query or a fragment"),
    ({"OAUTH_RESOURCE": "http://db.example.com/mcp"}, "must use https"),
    ({"OAUTH_RESOURCE": "db.example.com/mcp"}, "is not an https URL"),
    ({"OAUTH_RESOURCE": "https://user@db.example.com/mcp"}, "is not an https URL"),
    ({"OAUTH_ISSUERS": ""}, "OAUTH_ISSUERS is not"),
    ({"OAUTH_ISSUERS": "http://login.example.com"}, "OAUTH_ISSUERS: 'http://login.example.com' must use https"),
    ({"OAUTH_ALGORITHMS": "RS256,HS256"}, "OAUTH_ALGORITHMS: HS256"),
    ({"OAUTH_ALGORITHMS": "none"}, "OAUTH_ALGORITHMS: none"),
    ({"OAUTH_JWKS_URL": "https://a/jwks", "OAUTH_ISSUERS": "https://a,https://b"}, "single issuer"),
    ({"OAUTH_INTROSPECTION_CLIENT_ID": "rs"}, "go together"),
    ({"OAUTH_SCOPES": 'db.read "x"'}, "OAUTH_SCOPES"),
    ({"OAUTH_TOOL_SCOPES": "query"}, "OAUTH_TOOL_SCOPES: 'query' is not `tool=scope scope`"),
    ({"OAUTH_JWKS_CACHE": "-1"}, "OAUTH_JWKS_CACHE"),
])
def test_bad_values_stop_start_up_naming_the_variable(env, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("?", r"\?")):
        settings(**env)


def test_oauth_variables_without_a_resource_are_refused():
    with pytest.raises(ConfigError, match="OAUTH_ISSUERS is set but OAUTH_RESOURCE is not"):
        load_settings({"DATABASE_URL": BASE["DATABASE_URL"], "OAUTH_ISSUERS": "https://login.example.com"})
    with pytest.raises(ConfigError, match="ROLE_CLAIM is set but neither"):
        load_settings({"DATABASE_URL": BASE["DATABASE_URL"], "ROLE_CLAIM": "db_role", "ALLOWED_ROLES": "a"})
    assert settings(ROLE_CLAIM="db_role", ALLOWED_ROLES="a,b").oauth.role_claim == "db_role"


def test_loopback_http_is_allowed_for_local_runs_and_tests():
    oauth = settings(OAUTH_RESOURCE="http://127.0.0.1:3401/mcp", OAUTH_ISSUERS="http://localhost:8080").oauth
    assert oauth.resource == "http://127.0.0.1:3401/mcp"


def test_the_introspection_secret_is_redacted_and_not_in_repr():
    secret = "rs-secret-" + "0123456789abcdef"
    s = settings(OAUTH_INTROSPECTION_CLIENT_ID="rs", OAUTH_INTROSPECTION_CLIENT_SECRET=secret)
    assert secret in s.secret_values() and secret not in repr(s)


def test_metadata_urls_are_built_from_the_resource():
    assert metadata_url("https://db.example.com/mcp") == \
        "https://db.example.com/.well-known/oauth-protected-resource/mcp"
    assert metadata_url("https://db.example.com:8443/tenants/a/mcp") == \
        "https://db.example.com:8443/.well-known/oauth-protected-resource/tenants/a/mcp"
    assert metadata_url("https://db.example.com") == "https://db.example.com/.well-known/oauth-protected-resource"
    assert metadata_paths("https://db.example.com/proxy/mcp") == (
        "/.well-known/oauth-protected-resource/proxy/mcp", "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource")


def test_discovery_urls_follow_rfc_8414_then_openid():
    assert discovery_urls("https://login.example.com/") == [
        "https://login.example.com/.well-known/oauth-authorization-server",
        "https://login.example.com/.well-known/openid-configuration"]
    assert discovery_urls("https://sso.example.com/realms/acme") == [
        "https://sso.example.com/.well-known/oauth-authorization-server/realms/acme",
        "https://sso.example.com/.well-known/openid-configuration/realms/acme",
        "https://sso.example.com/realms/acme/.well-known/openid-configuration"]


def test_challenges_put_parameters_first_and_strip_what_a_quoted_string_cannot_hold():
    assert bearer_challenge(resource_metadata="https://x/m", scopes=("a", "b")) == \
        'Bearer resource_metadata="https://x/m", scope="a b"'
    assert bearer_challenge(resource_metadata="https://x/m", scopes=(), error="invalid_token",
                            description='bad "quoted" \\ thing\n') == \
        'Bearer resource_metadata="https://x/m", error="invalid_token", error_description="bad quoted  thing"'


def test_scope_policy():
    policy = ScopePolicy(baseline=("db.schema", "db.read"), tool_scopes={"report": ("db.read", "sales")},
                         tools=["query", "list_tables", "describe_table", "report", "database_health"])
    assert policy.needed("tools/call", "list_tables") == ("db.schema",)
    assert policy.needed("tools/call", "query") == ("db.read",)
    assert policy.needed("tools/call", "query", writes=True) == ("db.read", "db.write")
    assert policy.needed("tools/call", "report") == ("db.read", "sales")
    assert policy.needed("tools/call", "database_health") == ("db.read",)
    assert policy.needed("resources/read") == ("db.schema",) and policy.needed("completion/complete") == ("db.schema",)
    assert policy.needed("tools/list") == () and policy.needed("initialize") == () and policy.needed(None) == ()
    assert policy.challenge(("db.read", "db.write")) == ("db.schema", "db.read", "db.write")
    assert policy.missing(frozenset({"db.read"}), ("db.read", "db.write"))
    assert not policy.missing(frozenset({"db.read", "db.write", "x"}), ("db.read", "db.write"))
    with pytest.raises(ConfigError, match="OAUTH_TOOL_SCOPES: 'nope' is not a tool"):
        ScopePolicy(baseline=(), tool_scopes={"nope": ("x",)}, tools=["query"])


def test_introspection_answers_must_be_for_us_unexpired_and_name_a_subject():
    from pgmcp_http.auth.fetch import JsonFetcher
    from pgmcp_http.auth.introspection import Introspector
    from pgmcp_http.auth.keysets import IssuerKeys

    oauth = settings(OAUTH_INTROSPECTION_CLIENT_ID="rs", OAUTH_INTROSPECTION_CLIENT_SECRET="s" * 20).oauth
    issuer = "https://login.example.com/"
    introspector = Introspector(oauth, {issuer: IssuerKeys(issuer, JsonFetcher(1.0))}, JsonFetcher(1.0),
                                clock=lambda: 1_000.0)
    good = {"active": True, "aud": ["https://db.example.com/mcp"], "client_id": "svc", "exp": 2_000,
            "scope": "db.read"}
    assert introspector.judge(good, issuer)["sub"] == "svc"  # a client acting for itself
    assert introspector.judge({**good, "sub": "alice"}, issuer)["sub"] == "alice"
    assert introspector.judge({**good, "iss": issuer}, issuer)["iss"] == issuer
    for answer, why in [({**good, "aud": None}, "not issued for this server"),
                        ({**good, "aud": "https://other.example.com/mcp"}, "not issued for this server"),
                        ({**good, "exp": 999}, "expired"),
                        ({**good, "iss": "https://evil.example.com/"}, "another issuer"),
                        ({**good, "username": "alice"}, "names no sub")]:
        verdict = introspector.judge({k: v for k, v in answer.items() if v is not None}, issuer)
        assert isinstance(verdict, str) and why in verdict, (answer, verdict)
    with pytest.raises(ConfigError, match="needs a single issuer"):
        settings(OAUTH_INTROSPECTION_CLIENT_ID="rs", OAUTH_INTROSPECTION_CLIENT_SECRET="s" * 20,
                 OAUTH_ISSUERS="https://a.example.com,https://b.example.com")


def test_default_ports_and_offline_access_are_refused():
    with pytest.raises(ConfigError, match="leave out the default port"):
        settings(OAUTH_RESOURCE="https://db.example.com:443/mcp")
    assert settings(OAUTH_RESOURCE="https://db.example.com:8443/mcp").oauth.resource.endswith(":8443/mcp")
    with pytest.raises(ConfigError, match="leave out offline_access"):
        settings(OAUTH_SCOPES="db.read offline_access")
