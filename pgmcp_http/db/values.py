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
  overflow become those words as strings, as for float8; a value orjson
  cannot hold (``1e400``, a lone surrogate escape, nesting deeper than 1,024)
  is sent exactly as PostgreSQL wrote it;
- ranges: PostgreSQL's text (``[1,5)``);
- arrays of all of these: lists; every other type: PostgreSQL's text.
"""

from __future__ import annotations

import base64
import enum
import json
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


class _NonNumber(ValueError):
    """A bare Infinity or NaN: the text is EXPLAIN's, not JSON."""


def _refuse_non_number(word: str) -> str:
    raise _NonNumber(word)


def _word(word: str) -> str:
    return word  # "Infinity", "-Infinity" or "NaN": JSON has no such numbers; keep the word, as for float8


def _estimate(text: str) -> int | float:
    return int(text) if len(text) <= 18 else float(text)  # a plan's 1e100 rows ceiling is 101 digits long


def _unusual_json(text: str) -> Any:
    """What orjson refuses, in one of two kinds.

    EXPLAIN prints overflowed estimates as bare ``Infinity`` and ``NaN``: such a plan is decoded with
    those words as strings, and numbers too long for 64 bits as floats (they are estimates). Any other
    text PostgreSQL sends for json/jsonb is JSON it has already checked, which orjson cannot hold in
    Python (a number beyond a double such as ``1e400``, a lone surrogate escape, nesting deeper than
    1,024): it is sent exactly as PostgreSQL wrote it (:class:`orjson.Fragment`). Checking which kind
    costs a parse with the standard library, and only these rare values pay it.
    """
    try:
        json.loads(text, parse_constant=_refuse_non_number, parse_int=str, parse_float=str)
    except _NonNumber:
        return json.loads(text, parse_constant=_word, parse_int=_estimate)
    except (ValueError, RecursionError):
        pass  # deeper than Python's recursion limit: PostgreSQL has already checked that it is JSON
    return orjson.Fragment(text)


def _json(value: str | None, _cur: Any) -> Any:
    if value is None:
        return None
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return _unusual_json(value)
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
