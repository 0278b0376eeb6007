"""The OAuth sign-in part of the Identity group: OAUTH_RESOURCE, the issuers, their keys, scopes, introspection.

Checked here once, as the MCP authorization spec and RFC 9728 want them (a canonical resource URL,
https issuers, asymmetric algorithms only); :mod:`pgmcp_http.auth` uses the result to judge tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pgmcp_http.config.identity import JWT_ALGORITHMS, claim_rules
from pgmcp_http.config.limits import TOOL_NAME
from pgmcp_http.config.reader import ConfigError, Reader
from pgmcp_http.config.urls import web_url
from pgmcp_http.config.variables import VARIABLES

__all__ = ["OAuthSettings", "oauth"]


@dataclass(frozen=True, kw_only=True)
class OAuthSettings:
    """How OAuth access tokens from the identity provider are checked (the OAUTH_* variables), and the claim
    rules they share with JWT_KEY_FILE tokens."""

    resource: str
    issuers: tuple[str, ...]
    jwks_url: str | None = None
    audiences: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256")
    token_types: tuple[str, ...] | None = ("at+jwt", "application/at+jwt")
    scopes: tuple[str, ...] = ("db.schema", "db.read")
    tool_scopes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    resource_name: str = "pgmcp-http"
    jwks_cache_s: int = 600
    fetch_timeout_ms: int = 3_000
    introspection_client_id: str | None = None
    introspection_client_secret: str | None = field(default=None, repr=False)
    subject_claim: str = "sub"
    role_claim: str | None = None
    allowed_roles: tuple[str, ...] = ()

    @property
    def accepted_audiences(self) -> tuple[str, ...]:
        """Every ``aud`` value a token may carry to be for this server: the resource first."""
        return (self.resource, *self.audiences)


# RFC 6749 scope-token: printable ASCII but space, " and \ (and here not , or =, which OAUTH_TOOL_SCOPES uses).
_SCOPE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3c\x3e-\x5b\x5d-\x7e]+$")


def _canonical_resource(reader: Reader) -> str | None:
    """OAUTH_RESOURCE as the MCP authorization spec's canonical server URI: lower-case scheme and host, no
    trailing slash, no query or fragment. Refused rather than repaired, since clients compare it byte for byte
    with the URL they were given."""
    value = reader.raw("OAUTH_RESOURCE")
    if value is None:
        return None
    web_url("OAUTH_RESOURCE", value, example="https://db.example.com/mcp")
    parts = urlsplit(value)
    if value[:len(parts.scheme) + 3 + len(parts.netloc)] != f"{parts.scheme}://{parts.netloc}".lower():
        raise ConfigError(f"OAUTH_RESOURCE: {value!r}: write the scheme and host in lower case, as clients send them")
    if parts.path.endswith("/"):
        raise ConfigError(f"OAUTH_RESOURCE: {value!r} must not end with a slash (clients compare it exactly; "
                          "for example https://db.example.com/mcp)")
    if parts.port is not None and parts.port == {"https": 443, "http": 80}[parts.scheme]:
        raise ConfigError(f"OAUTH_RESOURCE: {value!r}: leave out the default port, as users type the URL (clients "
                          "compare it exactly)")
    return value


def _scope_list(name: str, value: str) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(value.split()))
    for scope in scopes:
        if not _SCOPE.match(scope):
            raise ConfigError(f"{name}: {scope!r} is not a scope name (printable ASCII without spaces, quotes, "
                              "backslashes, commas or =)")
    return scopes


def _advertised_scopes(reader: Reader) -> tuple[str, ...]:
    """OAUTH_SCOPES: the baseline a client asks for at sign-in; ``offline_access`` is the client's business
    (MCP 2026-07-28 says it SHOULD NOT be advertised), so it is refused here."""
    scopes = _scope_list("OAUTH_SCOPES", reader.raw("OAUTH_SCOPES") or "db.schema db.read")
    if "offline_access" in scopes:
        raise ConfigError("OAUTH_SCOPES: leave out offline_access; clients ask for it themselves when the "
                          "authorization server offers it")
    return scopes


def _tool_scopes(reader: Reader) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """OAUTH_TOOL_SCOPES: ``tool=scope scope`` entries separated by commas (which tools exist is checked once
    the tools are known)."""
    value = reader.raw("OAUTH_TOOL_SCOPES")
    entries: dict[str, tuple[str, ...]] = {}
    for item in (value or "").split(","):
        if not item.strip():
            continue
        tool, sep, scopes = item.partition("=")
        if not sep or not TOOL_NAME.match(tool.strip()):
            raise ConfigError(f"OAUTH_TOOL_SCOPES: {item.strip()!r} is not `tool=scope scope`; for example "
                              "OAUTH_TOOL_SCOPES=query=db.read analytics,list_tables=db.schema")
        entries[tool.strip()] = _scope_list("OAUTH_TOOL_SCOPES", scopes)
    return tuple(entries.items())


def oauth(reader: Reader) -> OAuthSettings | None:
    """OAUTH_*: None when OAUTH_RESOURCE is unset (then no other OAUTH_* variable may be)."""
    resource = _canonical_resource(reader)
    if resource is None:
        stray = [variable.name for variable in VARIABLES
                 if variable.name.startswith("OAUTH_") and reader.raw(variable.name) is not None]
        if stray:
            raise ConfigError(f"{stray[0]} is set but OAUTH_RESOURCE is not; set OAUTH_RESOURCE to this server's "
                              "MCP URL (https://db.example.com/mcp) to turn OAuth sign-in on")
        return None
    issuers = tuple(dict.fromkeys(web_url("OAUTH_ISSUERS", part.strip(), example="https://login.example.com")
                                  for part in (reader.raw("OAUTH_ISSUERS") or "").split(",") if part.strip()))
    if not issuers:
        raise ConfigError("OAUTH_RESOURCE is set but OAUTH_ISSUERS is not: name the authorization server whose "
                          "tokens this server accepts, e.g. OAUTH_ISSUERS=https://login.example.com")
    jwks_url = reader.raw("OAUTH_JWKS_URL")
    if jwks_url is not None:
        web_url("OAUTH_JWKS_URL", jwks_url, example="https://login.example.com/jwks")
        if len(issuers) > 1:
            raise ConfigError("OAUTH_JWKS_URL is for a single issuer; with several OAUTH_ISSUERS each one's keys "
                              "are found through its discovery document")
    algorithms = tuple(part.strip() for part in (reader.raw("OAUTH_ALGORITHMS") or "RS256,ES256,PS256").split(",")
                       if part.strip())
    refused = [name for name in algorithms if name not in JWT_ALGORITHMS or name.startswith("HS")]
    if refused or not algorithms:
        raise ConfigError(f"OAUTH_ALGORITHMS: {', '.join(refused) or 'empty'} is not an asymmetric signature "
                          "algorithm (RS256, PS256, ES256, EdDSA...); a key set never holds an HMAC secret")
    types_value = (reader.raw("OAUTH_TOKEN_TYPES") or "at+jwt").lower()
    token_types = None if types_value.strip() == "any" else tuple(
        variant for part in types_value.split(",") if part.strip()
        for variant in (part.strip(), f"application/{part.strip()}"))
    secret = reader.secret("OAUTH_INTROSPECTION_CLIENT_SECRET")
    client_id = reader.raw("OAUTH_INTROSPECTION_CLIENT_ID")
    if (client_id is None) != (secret is None):
        raise ConfigError("OAUTH_INTROSPECTION_CLIENT_ID and OAUTH_INTROSPECTION_CLIENT_SECRET go together; set "
                          "both (to accept opaque tokens) or neither")
    if client_id is not None and len(issuers) > 1:
        raise ConfigError("OAUTH_INTROSPECTION_CLIENT_ID needs a single issuer in OAUTH_ISSUERS: its secret is one "
                          "issuer's, and a caller's opaque token must not be shown to another")
    subject_claim, role_claim, allowed = claim_rules(reader, tokens_checked=True)
    return OAuthSettings(
        resource=resource, issuers=issuers, jwks_url=jwks_url,
        audiences=tuple(part.strip() for part in (reader.raw("OAUTH_AUDIENCES") or "").split(",") if part.strip()),
        algorithms=algorithms, token_types=token_types,
        scopes=_advertised_scopes(reader),
        tool_scopes=_tool_scopes(reader),
        resource_name=reader.raw("OAUTH_RESOURCE_NAME") or "pgmcp-http",
        jwks_cache_s=reader.integer("OAUTH_JWKS_CACHE", 600, minimum=10, maximum=86_400, unit=" (seconds)"),
        fetch_timeout_ms=reader.integer("OAUTH_FETCH_TIMEOUT", 3_000, minimum=100, maximum=60_000,
                                        unit=" (milliseconds)"),
        introspection_client_id=client_id, introspection_client_secret=secret,
        subject_claim=subject_claim, role_claim=role_claim, allowed_roles=allowed)
