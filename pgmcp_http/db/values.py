"""PostgreSQL values to JSON that survives the trip.

Typecasters are registered on each connection (never globally) and turn the
server's text output straight into JSON-ready Python values:

- numeric and money: strings with the exact digits (a JSON number would lose
  precision in most clients);
- float4/float8: numbers, except ``"NaN"``, ``"Infinity"``, ``"-Infinity"``
  (JSON has no such numbers), so NULL and NaN stay distinguishable;
- timestamps, dates, times: ISO 8601 strings (``2025-01-01T10:00:00+00:00``);
  ``infinity`` and BC dates keep PostgreSQL's spelling;
- interval: ISO 8601 durations (the transaction sets ``IntervalStyle``);
- bytea: ``"base64:<data>"``;
- json/jsonb: the JSON value itself; a JSON ``null`` is :data:`JSON_NULL`
  (written as ``null`` by orjson, but not ``None``, so the text formats can
  tell it from SQL NULL); the non-numbers ``Infinity``, ``-Infinity`` and
  ``NaN`` that ``EXPLAIN (FORMAT JSON)`` prints unquoted for estimates that
  overflow become those words as strings, as for float8; a number no double
  or 64-bit integer holds is sent exactly as PostgreSQL wrote it;
- ranges: PostgreSQL's text (``[1,5)``);
- arrays of all of these: lists; every other type: PostgreSQL's text.
"""

from __future__ import annotations

import base64
import enum
import json
import math
import re
from collections.abc import Callable
from typing import Any

import orjson
import psycopg2.extensions as ext

__all__ = ["BYTEA_PREFIX", "JSON_NULL", "JsonNull", "register_casters"]

BYTEA_PREFIX = "base64:"

_ISO_DATETIME = re.compile(r"^(\d{4,}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d(?::\d\d){0,2})?$")
_TZ_OFFSET = re.compile(r"^(.*[+-]\d\d)$")
_FLOAT_WORDS = {"NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity"}


def _text(value: str | None, _cur: Any) -> str | None:
    return value


def _float(value: str | None, _cur: Any) -> float | str | None:
    if value is None:
        return None
    word = _FLOAT_WORDS.get(value)
    return word if word is not None else float(value)


def _timestamp(value: str | None, _cur: Any) -> str | None:
    """``2025-01-01 10:00:00+05:30`` → ``2025-01-01T10:00:00+05:30``; ``+00`` gains ``:00``."""
    if value is None:
        return None
    match = _ISO_DATETIME.match(value)
    if match is None:
        return value  # infinity, -infinity, BC dates: keep PostgreSQL's spelling
    date, time, offset = match.groups()
    if offset is None:
        return f"{date}T{time}"
    if len(offset) == 3:
        offset += ":00"
    return f"{date}T{time}{offset}"


def _timetz(value: str | None, _cur: Any) -> str | None:
    if value is None:
        return None
    return value + ":00" if _TZ_OFFSET.match(value) else value


def _bytea(value: str | None, _cur: Any) -> str | None:
    """Hex output (``\\x00ff``; the transaction sets ``bytea_output = 'hex'``) to ``base64:AP8=``."""
    if value is None:
        return None
    return BYTEA_PREFIX + base64.b64encode(bytes.fromhex(value[2:])).decode("ascii")


class JsonNull(enum.Enum):
    """A json/jsonb value that is JSON's ``null``, as opposed to SQL NULL (``None``).

    orjson writes an enum member as its value, so it is ``null`` in every JSON
    the server sends; only the csv and table formats, which must show the
    difference, look for it. It is falsy, like ``None``.
    """

    NULL = None

    def __bool__(self) -> bool:
        return False


JSON_NULL = JsonNull.NULL


def _word(word: str) -> str:
    return word  # "Infinity", "-Infinity" or "NaN": JSON has no such numbers; keep the word, as for float8


def _integer(text: str) -> int | orjson.Fragment:
    number = int(text)
    return number if -(2**63) <= number < 2**64 else orjson.Fragment(text)  # orjson writes 64 bits at most


def _decimal(text: str) -> float | orjson.Fragment:
    number = float(text)
    return number if math.isfinite(number) else orjson.Fragment(text)  # 1e400: kept as written, not inf


def _without_lone_surrogates(value: Any) -> Any:
    """Strings as UTF-8 can carry them: a lone surrogate (``"\\ud800"``, which json accepts) becomes U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(key): _without_lone_surrogates(item) for key, item in value.items()}
    return value


def _lenient_json(text: str) -> Any:
    """What orjson refuses: EXPLAIN's bare Infinity and NaN, numbers beyond 64 bits or a double (``1e400``,
    kept as written with :class:`orjson.Fragment`), lone surrogates. Read by the standard library, so only
    these rare values pay for it."""
    return _without_lone_surrogates(json.loads(text, parse_constant=_word, parse_int=_integer, parse_float=_decimal))


def _json(value: str | None, _cur: Any) -> Any:
    if value is None:
        return None
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        decoded = _lenient_json(value)
    return JSON_NULL if decoded is None else decoded


# (scalar OIDs, array OIDs, name, cast function)
_CASTERS: tuple[tuple[tuple[int, ...], tuple[int, ...], str, Callable[[str | None, Any], Any]], ...] = (
    ((1700,), (1231,), "PGMCP_NUMERIC", _text),
    ((790,), (791,), "PGMCP_MONEY", _text),
    ((700, 701), (1021, 1022), "PGMCP_FLOAT", _float),
    ((1114, 1184), (1115, 1185), "PGMCP_TIMESTAMP", _timestamp),
    ((1082,), (1182,), "PGMCP_DATE", _text),
    ((1083,), (1183,), "PGMCP_TIME", _text),
    ((1266,), (1270,), "PGMCP_TIMETZ", _timetz),
    ((1186,), (1187,), "PGMCP_INTERVAL", _text),
    ((17,), (1001,), "PGMCP_BYTEA", _bytea),
    ((114, 3802), (199, 3807), "PGMCP_JSON", _json),
    ((2950,), (2951,), "PGMCP_UUID", _text),
    ((869, 650, 829, 774), (1041, 651, 1040, 775), "PGMCP_NET", _text),
    # Ranges: psycopg2.extras (imported for Json) registers Range objects globally; keep PostgreSQL's text.
    ((3904, 3906, 3908, 3910, 3912, 3926), (3905, 3907, 3909, 3911, 3913, 3927), "PGMCP_RANGE", _text),
)


def _build() -> list[Any]:
    built: list[Any] = []
    for oids, array_oids, name, fn in _CASTERS:
        scalar = ext.new_type(oids, name, fn)
        built.append(scalar)
        built.append(ext.new_array_type(array_oids, name + "_ARRAY", scalar))
    return built


_BUILT = _build()


def register_casters(conn: ext.connection) -> None:
    """Install the JSON-ready casters on one connection (psycopg2's globals stay untouched)."""
    for caster in _BUILT:
        ext.register_type(caster, conn)
