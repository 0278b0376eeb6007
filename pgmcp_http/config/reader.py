"""Reading one variable: conversions that raise a :class:`ConfigError` naming the variable.

Every area module (database, identity, oauth...) reads through a :class:`Reader`,
so each mistake comes back as one line that says which variable, what was
expected and what to do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ConfigError", "Reader"]


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# One name part, as SQL writes it: "Quoted ""Name""" (kept as is) or bare_name (folded to lower case).
_NAME_PART = re.compile(r'\s*(?:"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*))\s*')


class Reader:
    """Reads and converts variables, raising ConfigError that names the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def raw(self, name: str) -> str | None:
        """The value with surrounding blanks removed; None when unset or blank (blank means unset)."""
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def secret(self, name: str) -> str | None:
        """NAME, or the contents of the file named by NAME_FILE (never both)."""
        direct = self.raw(name)
        path = self.raw(f"{name}_FILE")
        if direct is not None and path is not None:
            raise ConfigError(f"{name} and {name}_FILE are both set; keep only one of them")
        if path is None:
            return direct
        try:
            content = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
        if not content:
            raise ConfigError(f"{name}_FILE: {path} is empty")
        return content

    def boolean(self, name: str, default: bool) -> bool:
        """true/false, yes/no, on/off or 1/0, in any case."""
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{name}={value!r} is not a boolean; use true or false")

    def positive_number(self, name: str) -> float | None:
        """An optional number above zero (planner costs and row estimates are fractional)."""
        value = self.raw(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a number") from None
        if not number > 0 or number == float("inf"):
            raise ConfigError(f"{name}={value!r} must be a number above 0 (unset it for no ceiling)")
        return number

    def integer(self, name: str, default: int, *, minimum: int, maximum: int | None = None,
                unit: str = "") -> int:
        """A whole number within [minimum, maximum]; ``unit`` is named in the message (" (milliseconds)")."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a whole number{unit}") from None
        if number < minimum or (maximum is not None and number > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise ConfigError(f"{name}={number} is out of range; it must be {bound}{unit}")
        return number

    def choice(self, name: str, choices: Mapping[str, str] | tuple[str, ...]) -> str | None:
        """One of ``choices``, in any case; a mapping also translates it (``warn`` to ``WARNING``)."""
        value = self.raw(name)
        if value is None:
            return None
        key = value.lower()
        if key not in choices:
            raise ConfigError(f"{name}={value!r} is not one of: {', '.join(choices)}")
        return choices[key] if isinstance(choices, Mapping) else key

    def names(self, name: str, *, qualified: bool = False, what: str = "table") -> tuple[str, ...]:
        """A comma-separated list of names, read the way PostgreSQL reads identifiers.

        Unquoted names fold to lower case (``App.Secrets`` is ``app.secrets``);
        double-quoted ones keep their case (``"Audit"."Log"``). Entries come
        back as stored names, ``schema.table`` when qualified.
        """
        value = self.raw(name)
        if value is None:
            return ()
        form = f"`{what}` or `schema.{what}`" if qualified else "a schema name"
        entries: list[str] = []
        for item in _split_names(value):
            parts = _name_parts(item)
            if parts is None or len(parts) > (2 if qualified else 1):
                raise ConfigError(f"{name}: {item.strip()!r} is not {form} (comma-separated; quote mixed-case "
                                  'names like "Name")')
            if any("." in part for part in parts):
                raise ConfigError(f"{name}: {item.strip()!r}: names containing a dot are not supported")
            entries.append(".".join(parts))
        return tuple(entries)

    def path(self, name: str) -> str | None:
        """A file that exists and this user can read (certificates, keys, TOOLS_FILE)."""
        value = self.raw(name)
        if value is None:
            return None
        target = Path(value)
        if not target.is_file():
            raise ConfigError(f"{name}={value}: no such file")
        if not os.access(target, os.R_OK):
            raise ConfigError(f"{name}={value}: the file is not readable by this user")
        return value


def _split_names(value: str) -> list[str]:
    """Split on commas outside double quotes; empty entries are dropped."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item for item in items if item.strip()]


def _name_parts(item: str) -> list[str] | None:
    """``schema.table`` parts as stored by PostgreSQL, or None when ``item`` is not a dotted name."""
    parts: list[str] = []
    position = 0
    while True:
        match = _NAME_PART.match(item, position)
        if match is None:
            return None
        quoted, bare = match.groups()
        parts.append(quoted.replace('""', '"') if quoted is not None else bare.lower())
        position = match.end()
        if position == len(item):
            return parts
        if item[position] != ".":
            return None
        position += 1
