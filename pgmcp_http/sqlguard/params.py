"""``$n`` placeholders to the driver's form, found by PostgreSQL's scanner.

psycopg2 binds ``%(pN)s`` placeholders and treats every other ``%`` as a
format character, so the text handed to it must have ``$n`` replaced and
every ``%`` doubled. Doing that with a regular expression would also touch
``$1`` inside string literals, comments and dollar-quoted bodies; the scanner
knows which ``$1`` are parameters. (pglast's scanner reports character
offsets, inclusive at the end.)
"""

from __future__ import annotations

from dataclasses import dataclass

from pglast import parser

__all__ = ["Placeholders", "param_key", "rewrite_placeholders"]


@dataclass(frozen=True)
class Placeholders:
    """The driver-ready text and the number of parameters it expects (the highest ``$n``)."""

    text: str
    count: int


def param_key(number: int) -> str:
    """The mapping key the driver text uses for ``$number``."""
    return f"p{number}"


def rewrite_placeholders(sql: str) -> Placeholders:
    """Rewrite ``$n`` to ``%(pn)s`` and ``%`` to ``%%``, outside literals and comments alike."""
    pieces: list[str] = []
    position = 0
    highest = 0
    for token in parser.scan(sql):
        if token.name != "PARAM":
            continue
        number = int(sql[token.start + 1:token.end + 1])
        highest = max(highest, number)
        pieces.append(sql[position:token.start].replace("%", "%%"))
        pieces.append(f"%({param_key(number)})s")
        position = token.end + 1
    pieces.append(sql[position:].replace("%", "%%"))
    return Placeholders(text="".join(pieces), count=highest)
