"""The Identity group: static tokens, key-file JWTs, the claims that name a caller and its role, the audit trail.

OAuth sign-in (the OAUTH_* variables) has its own module, :mod:`pgmcp_http.config.oauth`; the claim rules
(SUBJECT_CLAIM, ROLE_CLAIM, ALLOWED_ROLES) are shared by both kinds of token and live here.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pgmcp_http.config.reader import ConfigError, Reader

__all__ = ["JWT_ALGORITHMS", "JwtSettings", "TokenEntry", "audit", "auth", "claim_rules", "jwt", "role_name", "roles"]


@dataclass(frozen=True)
class TokenEntry:
    """A named caller of AUTH_TOKENS_FILE: ``name`` is its subject; only the token's SHA-256 is needed to
    recognise it (``token`` is kept, when the file gave it, so it can be redacted from logs)."""

    name: str
    sha256: bytes = field(repr=False)
    role: str | None = None
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class JwtSettings:
    """How bearer JWTs are verified and what their claims mean (JWT_* and the *_CLAIM variables)."""

    key: str = field(repr=False)
    algorithms: tuple[str, ...]
    audience: str
    issuer: str | None = None
    subject_claim: str = "sub"
    role_claim: str | None = None
    allowed_roles: tuple[str, ...] = ()


_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


def auth(reader: Reader) -> tuple[tuple[str, ...], tuple[TokenEntry, ...], str, bool]:
    """AUTH_TOKENS (or AUTH_TOKENS_FILE), AUTH_HEADER and REQUIRE_AUTH, checked together.

    AUTH_TOKENS_FILE holds either plain tokens (one per line or comma-separated)
    or, as YAML or JSON, named entries (:func:`_token_entries`).
    """
    raw = reader.secret("AUTH_TOKENS")
    source = "AUTH_TOKENS_FILE" if reader.raw("AUTH_TOKENS_FILE") is not None else "AUTH_TOKENS"
    entries = _token_entries(raw) if raw is not None and source == "AUTH_TOKENS_FILE" else None
    tokens: list[str] = []
    for line in (raw or "").splitlines() if entries is None else []:
        line = line.split("#", 1)[0] if source == "AUTH_TOKENS_FILE" else line
        tokens += [part.strip() for part in line.split(",") if part.strip()]
    for number, token in enumerate(tokens, start=1):
        if not _usable_token(token):
            raise ConfigError(f"{source}: token {number} must be at least 16 printable characters without spaces; "
                              "generate one with `openssl rand -hex 32`")
    header = reader.raw("AUTH_HEADER") or "X-API-Key"
    if not _HEADER_NAME.match(header) or header.lower() in ("authorization", "content-type", "host"):
        raise ConfigError(f"AUTH_HEADER={header!r} is not a usable header name (for example X-API-Key)")
    require = reader.boolean("REQUIRE_AUTH", False)
    if require and not tokens and not entries and reader.raw("JWT_KEY_FILE") is None \
            and reader.raw("OAUTH_RESOURCE") is None:
        raise ConfigError("REQUIRE_AUTH=true but no AUTH_TOKENS (or AUTH_TOKENS_FILE), JWT_KEY_FILE or "
                          "OAUTH_RESOURCE is set; give the server at least one way to know its callers")
    return tuple(dict.fromkeys(tokens)), tuple(entries or ()), header, require


def _usable_token(token: str) -> bool:
    return len(token) >= 16 and token.isprintable() and " " not in token


_SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+:-]{0,127}$")
_SHA256 = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")


def _token_entries(text: str) -> list[TokenEntry] | None:
    """Named callers from AUTH_TOKENS_FILE as YAML or JSON, or None when it is a plain token list.

    ``name: <token>`` or ``name: {token: <token> | sha256: <hex digest>, role: <role>}``;
    the name is the caller's subject. A plain list parses as one YAML string, never as a mapping.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(document, dict):
        return None
    entries: list[TokenEntry] = []
    digests: set[bytes] = set()
    for name, value in document.items():
        where = f"AUTH_TOKENS_FILE: entry {name!r}"
        if not isinstance(name, str) or not _SUBJECT.match(name) or name == "anonymous":
            raise ConfigError(f"{where}: a caller name is 1 to 128 of A-Z a-z 0-9 _ . @ + : - (and not "
                              "'anonymous'); it becomes the caller's subject")
        spec = {"token": value} if isinstance(value, str) else value
        if not isinstance(spec, dict) or not set(spec) <= {"token", "sha256", "role"} or \
                ("token" in spec) == ("sha256" in spec):
            raise ConfigError(f"{where}: write `{name}: <token>` or `{name}: {{token: ..., role: ...}}` or "
                              f"`{name}: {{sha256: <hex of the token's SHA-256>, role: ...}}` (exactly one of "
                              "token and sha256)")
        if "token" in spec:
            token = spec["token"]
            if not isinstance(token, str) or not _usable_token(token):
                raise ConfigError(f"{where}: the token must be at least 16 printable characters without spaces; "
                                  "generate one with `openssl rand -hex 32`")
            digest, secret = hashlib.sha256(token.encode("utf-8")).digest(), token
        else:
            match = _SHA256.match(str(spec["sha256"]).strip())
            if match is None:
                raise ConfigError(f"{where}: sha256 must be 64 hex digits (`printf %s TOKEN | sha256sum`)")
            digest, secret = bytes.fromhex(match.group(1)), None
        if digest in digests:
            raise ConfigError(f"{where}: the same token is given to two callers; each caller needs its own")
        digests.add(digest)
        entries.append(TokenEntry(name=name, sha256=digest, role=role_name(spec.get("role"), where),
                                  token=secret))
    return entries


def role_name(value: object, where: str) -> str | None:
    """A PostgreSQL role name as stored (case kept: it is quoted when used)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value.encode()) > 63 or not value.isprintable():
        raise ConfigError(f"{where}: the role must be a PostgreSQL role name (1 to 63 bytes, printable), "
                          f"not {value!r}")
    return value.strip()


JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
                  "HS256", "HS384", "HS512")


def claim_rules(reader: Reader, *, tokens_checked: bool) -> tuple[str, str | None, tuple[str, ...]]:
    """SUBJECT_CLAIM, ROLE_CLAIM and ALLOWED_ROLES: what a validated token's claims mean, for key-file JWTs and
    OAuth access tokens alike. ``tokens_checked``: JWT_KEY_FILE or OAUTH_RESOURCE is set."""
    if not tokens_checked:
        for name in ("ROLE_CLAIM", "ALLOWED_ROLES"):
            if reader.raw(name) is not None:
                raise ConfigError(f"{name} is set but neither JWT_KEY_FILE nor OAUTH_RESOURCE is: tokens with claims "
                                  "are not accepted, so no claim can name a role")
    role_claim = reader.raw("ROLE_CLAIM")
    allowed = tuple(role_name(part, "ALLOWED_ROLES") or "" for part in (reader.raw("ALLOWED_ROLES") or "").split(",")
                    if part.strip())
    if role_claim is not None and not allowed:
        raise ConfigError("ROLE_CLAIM is set but ALLOWED_ROLES is not: list the roles a token may ask for")
    return reader.raw("SUBJECT_CLAIM") or "sub", role_claim, allowed


def jwt(reader: Reader) -> JwtSettings | None:
    """JWT_* and the claim variables; None when JWT_KEY_FILE is unset (JWTs are then just unknown tokens)."""
    path = reader.path("JWT_KEY_FILE")
    if path is None:
        for name in ("JWT_AUDIENCE", "JWT_ISSUER"):
            if reader.raw(name) is not None:
                raise ConfigError(f"{name} is set but JWT_KEY_FILE is not; give the key JWTs are signed with")
        return None
    key = Path(path).read_text(encoding="utf-8").strip()
    algorithms = tuple(part.strip() for part in (reader.raw("JWT_ALGORITHMS") or "RS256").split(",") if part.strip())
    unknown = [name for name in algorithms if name not in JWT_ALGORITHMS]
    if unknown or not algorithms:
        raise ConfigError(f"JWT_ALGORITHMS: {', '.join(unknown) or 'empty'} is not one of {', '.join(JWT_ALGORITHMS)}")
    public = key.startswith("-----BEGIN")
    if public == any(name.startswith("HS") for name in algorithms):
        raise ConfigError("JWT_KEY_FILE must hold a PEM public key for RS/PS/ES/EdDSA algorithms, or an HMAC "
                          "secret (no PEM) for HS256/384/512; do not mix them in JWT_ALGORITHMS")
    if not public and len(key) < 32:
        raise ConfigError("JWT_KEY_FILE: an HMAC secret must be at least 32 characters")
    audience = reader.raw("JWT_AUDIENCE")
    if audience is None:
        raise ConfigError("JWT_KEY_FILE is set but JWT_AUDIENCE is not: name the audience JWTs must be issued for, "
                          "or a token minted for another service would be accepted")
    subject_claim, role_claim, allowed = claim_rules(reader, tokens_checked=True)
    return JwtSettings(key=key, algorithms=algorithms, audience=audience, issuer=reader.raw("JWT_ISSUER"),
                       subject_claim=subject_claim, role_claim=role_claim, allowed_roles=allowed)


def roles(reader: Reader, entries: tuple[TokenEntry, ...], *, claimed: bool) -> tuple[str | None, bool]:
    """DEFAULT_ROLE and ROLE_REQUIRED, checked against the entries' roles; ``claimed``: a JWT or OAuth ROLE_CLAIM
    can give callers a role."""
    default = role_name(reader.raw("DEFAULT_ROLE"), "DEFAULT_ROLE")
    required = reader.boolean("ROLE_REQUIRED", False)
    if required and default is None and not claimed and not any(entry.role for entry in entries):
        raise ConfigError("ROLE_REQUIRED=true but no role is configured: set DEFAULT_ROLE or give entries of "
                          "AUTH_TOKENS_FILE a role, or every database call would be refused")
    return default, required


def audit(reader: Reader) -> tuple[str, str]:
    """AUDIT_LOG (stdout, off or a file path in an existing, writable directory) and AUDIT_SQL."""
    target = reader.raw("AUDIT_LOG") or "stdout"
    if target.lower() in ("stdout", "off"):
        target = target.lower()
    else:
        folder = Path(target).parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"AUDIT_LOG={target}: {folder} is not a writable directory; create it, or use "
                              "stdout or off")
    return target, reader.choice("AUDIT_SQL", ("text", "fingerprint", "off")) or "text"
