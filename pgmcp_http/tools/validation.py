"""Tool arguments against the tool's JSON Schema: a compiled quick check, then jsonschema for the verdict.

jsonschema walks the schema anew on every call, which made validating
``query``'s two arguments cost about a tenth of the server's CPU time per call.
Tool schemas use a small part of JSON Schema (an object of typed properties,
``required``, ``additionalProperties: false``, ``enum``, bounds), so each one
is compiled once into a plain function that answers "certainly valid" or
"not sure". Only "not sure" (a bad argument, or a keyword the quick check
does not know) goes to jsonschema, which then gives the verdict and the
message. The quick check may pass up on valid input; it must never accept
what jsonschema refuses (``tests/test_tools_validation.py`` compares them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

__all__ = ["ArgumentValidator", "quick_check"]

Check = Callable[[Any], bool]

# Keywords that only describe (they never make an instance invalid).
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "format", "$comment", "deprecated",
                          "readOnly", "writeOnly"})


def _is_integer(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_TYPES: dict[str, Check] = {
    "string": lambda value: isinstance(value, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
    "array": lambda value: isinstance(value, list),
    "object": lambda value: isinstance(value, dict),
}


def quick_check(schema: Any) -> Check | None:
    """A function that returns True only for instances ``schema`` accepts, or None when the schema uses
    something this compiler does not handle (then every instance goes to jsonschema)."""
    if schema is True or schema == {}:
        return lambda value: True
    if not isinstance(schema, Mapping):
        return None
    unknown = set(schema) - _ANNOTATIONS - set(_KEYWORDS)
    if unknown:
        return None
    checks: list[Check] = []
    for keyword, compile_keyword in _KEYWORDS.items():
        if keyword in schema:
            check = compile_keyword(schema[keyword], schema)
            if check is None:
                return None
            checks.append(check)
    if not checks:
        return lambda value: True
    if len(checks) == 1:
        return checks[0]
    return _all_of(tuple(checks))


def _all_of(checks: tuple[Check, ...]) -> Check:
    """True when every check is (a loop rather than ``all()`` over a generator: this runs on every call)."""
    def check_all(value: Any) -> bool:
        for check in checks:  # noqa: SIM110 - a generator per call costs more than the loop
            if not check(value):
                return False
        return True
    return check_all


def _type(kind: Any, schema: Mapping[str, Any]) -> Check | None:
    return _TYPES.get(kind) if isinstance(kind, str) else None


def _enum(values: Any, schema: Mapping[str, Any]) -> Check | None:
    if not isinstance(values, list) or not values or not all(isinstance(item, str) for item in values):
        return None  # only strings: jsonschema's equality for numbers and booleans differs from Python's
    allowed = frozenset(values)
    return lambda value: isinstance(value, str) and value in allowed


def _bound(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Mapping[str, Any]], Check | None]:
    def compile_bound(limit: Any, schema: Mapping[str, Any]) -> Check | None:
        if not _is_number(limit) or schema.get("type") not in ("integer", "number"):
            return None
        return lambda value: _is_number(value) and compare(value, limit)
    return compile_bound


def _length(compare: Callable[[int, int], bool], kind: type) -> Callable[[Any, Mapping[str, Any]], Check | None]:
    def compile_length(limit: Any, schema: Mapping[str, Any]) -> Check | None:
        if not _is_integer(limit):
            return None
        return lambda value: not isinstance(value, kind) or compare(len(value), limit)
    return compile_length


def _pattern(pattern: Any, schema: Mapping[str, Any]) -> Check | None:
    if not isinstance(pattern, str):
        return None
    try:
        compiled = re.compile(pattern)
    except re.error:
        return None
    return lambda value: not isinstance(value, str) or compiled.search(value) is not None


def _items(items: Any, schema: Mapping[str, Any]) -> Check | None:
    check = quick_check(items)
    if check is None:
        return None
    return lambda value: not isinstance(value, list) or all(check(item) for item in value)


def _unique(flag: Any, schema: Mapping[str, Any]) -> Check | None:
    if flag is False:
        return lambda value: True
    if flag is not True:
        return None
    # Only lists of strings are judged here (jsonschema's equality for other values is its own).
    return lambda value: not isinstance(value, list) or (
        all(isinstance(item, str) for item in value) and len(set(value)) == len(value))


def _properties(properties: Any, schema: Mapping[str, Any]) -> Check | None:
    if not isinstance(properties, Mapping):
        return None
    compiled: dict[str, Check] = {}
    for name, subschema in properties.items():
        check = quick_check(subschema)
        if check is None:
            return None
        compiled[name] = check

    def check_properties(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for name, item in value.items():
            check = compiled.get(name)
            if check is not None and not check(item):
                return False
        return True
    return check_properties


def _required(names: Any, schema: Mapping[str, Any]) -> Check | None:
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        return None
    wanted = frozenset(names)
    return lambda value: not isinstance(value, dict) or wanted <= value.keys()


def _additional(allowed: Any, schema: Mapping[str, Any]) -> Check | None:
    if allowed is True:
        return lambda value: True
    if allowed is not False or "patternProperties" in schema:
        return None
    known = frozenset(schema.get("properties") or ())
    return lambda value: not isinstance(value, dict) or value.keys() <= known


_KEYWORDS: dict[str, Callable[[Any, Mapping[str, Any]], Check | None]] = {
    "type": _type,
    "enum": _enum,
    "minimum": _bound(lambda value, limit: value >= limit),
    "maximum": _bound(lambda value, limit: value <= limit),
    "exclusiveMinimum": _bound(lambda value, limit: value > limit),
    "exclusiveMaximum": _bound(lambda value, limit: value < limit),
    "minLength": _length(lambda size, limit: size >= limit, str),
    "maxLength": _length(lambda size, limit: size <= limit, str),
    "pattern": _pattern,
    "items": _items,
    "minItems": _length(lambda size, limit: size >= limit, list),
    "maxItems": _length(lambda size, limit: size <= limit, list),
    "uniqueItems": _unique,
    "properties": _properties,
    "required": _required,
    "additionalProperties": _additional,
}


class ArgumentValidator:
    """Validates one tool's arguments: the quick check when it can vouch for them, jsonschema otherwise."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._full = Draft202012Validator(schema)
        self._quick = quick_check(schema)

    def problem(self, arguments: Any) -> str | None:
        """The first problem with ``arguments`` (as the caller should read it), or None."""
        if self._quick is not None and self._quick(arguments):
            return None
        error = best_match(self._full.iter_errors(arguments))
        if error is None:
            return None
        where = ".".join(str(part) for part in error.path)
        message = _without_long_values(error.message, error.instance)
        if error.validator in _LIMITS:
            message += f" ({_LIMITS[error.validator]} {error.validator_value})"
        if error.validator == "required" or not where:
            return f"invalid arguments: {message}"
        return f"invalid argument `{where}`: {message}"


_LONGEST_ECHO = 80
# jsonschema says "is too long" without the limit; the caller needs it to fix the call.
_LIMITS = {"maxItems": "at most", "maxLength": "at most", "minItems": "at least", "minLength": "at least"}


def _without_long_values(message: str, instance: Any) -> str:
    """jsonschema's message quotes the offending value whole (``[0, 1, ... 5000] is too long``) and unexpected
    property names too: a caller's long value is described instead of echoed, so a refusal stays short and does
    not repeat what was sent."""
    shown = repr(instance)
    if len(shown) > _LONGEST_ECHO and shown in message:
        message = message.replace(shown, _described(instance, shown))
    return _LONG_QUOTE.sub(lambda quoted: f"{quoted.group(0)[:40]}...' ({len(quoted.group(0)) - 2} characters)",
                           message)


_LONG_QUOTE = re.compile(rf"'[^']{{{_LONGEST_ECHO},}}'")


def _described(instance: Any, shown: str) -> str:
    def count(n: int, noun: str) -> str:
        return f"{n} {noun}" if n == 1 else f"{n} {noun}s"

    if isinstance(instance, list):
        return f"a list of {count(len(instance), 'item')}"
    if isinstance(instance, str):
        return f"a string of {count(len(instance), 'character')}"
    if isinstance(instance, dict):
        return f"an object with {count(len(instance), 'key')}"
    return f"{shown[:_LONGEST_ECHO]}..."
