"""Fenced code blocks of a Markdown file, read once by the CommonMark rule, for the docs tests.

A fence is three or more backticks or tildes (indented at most three spaces); it is closed by a
line of the same character, at least as long, with nothing after it. Both the link check (which
skips code) and the examples check (which runs it) read blocks through this module, so they
agree on where code starts and ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Block", "fenced_blocks", "prose_lines"]

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})\s*([^`\s]*)")


@dataclass(frozen=True)
class Block:
    """One fenced block: the indexes of its fence lines (``closing`` is None when never closed), its info word
    (``sh``, ``json``...) and its text."""

    opening: int
    closing: int | None
    info: str
    body: str


def fenced_blocks(lines: list[str]) -> list[Block]:
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        ticks, info = opening.groups()
        closing = next((end for end in range(index + 1, len(lines))
                        if lines[end].strip().startswith(ticks[0] * len(ticks))
                        and not lines[end].strip().strip(ticks[0])), None)
        stop = len(lines) if closing is None else closing
        found.append(Block(index, closing, info, "\n".join(lines[index + 1:stop]) + "\n"))
        index = stop + 1
    return found


def prose_lines(lines: list[str]) -> list[str]:
    """The lines outside fenced blocks."""
    inside = {number for block in fenced_blocks(lines)
              for number in range(block.opening, (len(lines) - 1 if block.closing is None else block.closing) + 1)}
    return [line for number, line in enumerate(lines) if number not in inside]
