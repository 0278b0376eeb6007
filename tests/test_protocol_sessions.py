"""Signed session ids: genuine ones verify anywhere with the secret; nothing else does."""

from __future__ import annotations

import pytest

from pgmcp_http.protocol.sessions import InvalidSession, SessionCodec

SECRET = b"0123456789abcdef0123456789abcdef"


def test_round_trip():
    codec = SessionCodec(SECRET, ttl_s=60, clock=lambda: 1000.0)
    claims = codec.verify(codec.issue("2025-06-18"))
    assert (claims.version, claims.issued_at, claims.expires_at) == ("2025-06-18", 1000, 1060)


def test_ids_are_unique_visible_ascii():
    codec = SessionCodec(SECRET, ttl_s=60)
    ids = {codec.issue("2025-11-25") for _ in range(100)}
    assert len(ids) == 100
    assert all(0x21 <= ord(ch) <= 0x7E for token in ids for ch in token)


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),   # signature changed
    lambda t: t.replace("v1.", "v2.", 1),                          # version prefix changed
    lambda t: "v1." + t.split(".")[1][:-1] + "x." + t.split(".")[2],  # payload changed
    lambda t: t + ".extra",
    lambda t: "",
])
def test_tampered_ids_are_refused(mangle):
    codec = SessionCodec(SECRET, ttl_s=60)
    with pytest.raises(InvalidSession):
        codec.verify(mangle(codec.issue("2025-11-25")))


def test_expired_and_foreign_ids_are_refused():
    now = [1000.0]
    codec = SessionCodec(SECRET, ttl_s=60, clock=lambda: now[0])
    token = codec.issue("2025-11-25")
    now[0] = 1061.0
    with pytest.raises(InvalidSession, match="expired"):
        codec.verify(token)
    other = SessionCodec(b"another-secret-another-secret-xx", ttl_s=60, clock=lambda: 1000.0)
    with pytest.raises(InvalidSession, match="signature"):
        other.verify(SessionCodec(SECRET, ttl_s=60, clock=lambda: 1000.0).issue("2025-11-25"))


@pytest.mark.parametrize("token", ["v1.abc.\u00e9\u00e9", "v1.\u00e9.abc", "v1.a\x00b.c"])
def test_non_ascii_or_control_characters_are_a_malformed_session(token):
    codec = SessionCodec(b"s" * 32, ttl_s=60)
    with pytest.raises(InvalidSession, match="malformed"):
        codec.verify(token)
