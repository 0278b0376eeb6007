"""Reading the tools file: YAML through PyYAML's safe loader, keeping the line of every mapping and key.

PyYAML's ``safe_load`` returns plain dicts and forgets where things were; an
error that cannot say "line 14" makes an operator search the file. The loader
here is ``SafeLoader`` (no Python tags, no arbitrary objects) whose mappings
and sequences remember their lines. It also refuses a key written twice in
one mapping, which PyYAML would silently resolve to the last value (two
``sql:`` keys would otherwise serve the one the reviewer did not read).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from pgmcp_http.tools.custom.errors import ToolsFileError

__all__ = ["LineDict", "LineList", "read_yaml"]


class LineDict(dict[str, Any]):
    """A YAML mapping: ``line`` where it starts, ``key_lines`` where each key stands (1-based)."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A YAML sequence: ``line`` where it starts, ``item_lines`` where each item starts (1-based)."""

    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry their line numbers."""

    path: str = ""


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _mapping(loader: _LineLoader, node: yaml.MappingNode) -> Iterator[LineDict]:
    data = LineDict()
    data.line = _line(node)
    data.key_lines = {}
    yield data  # PyYAML's protocol: the empty object first, so aliases can refer to it
    loader.flatten_mapping(node)  # `<<: *anchor` merge keys
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise ToolsFileError(loader.path, _line(key_node), f"the key {key!r} is not a name; keys are words "
                                 "such as name, description or sql (quote it if it is meant as text)")
        if key in data:
            raise ToolsFileError(loader.path, _line(key_node), f"the key `{key}` appears twice in the same "
                                 f"mapping (first at line {data.key_lines[key]}); keep one")
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = _line(key_node)


def _sequence(loader: _LineLoader, node: yaml.SequenceNode) -> Iterator[LineList]:
    data = LineList()
    data.line = _line(node)
    data.item_lines = []
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.item_lines.append(_line(item))


_LineLoader.add_constructor("tag:yaml.org,2002:map", _mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _sequence)


def read_yaml(path: str) -> Any:
    """The document in ``path``, with LineDict/LineList for mappings and sequences.

    A file that cannot be read or is not YAML raises ToolsFileError naming the line PyYAML stopped at.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise ToolsFileError(path, None, f"cannot read the file: {reason}") from None
    loader = _LineLoader(text)
    loader.path = path
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        hint = "fix the syntax there (indentation, a missing colon, an unclosed quote)"
        if isinstance(exc, yaml.constructor.ConstructorError):
            hint = "only plain YAML values are allowed (no `!!` tags)"
        raise ToolsFileError(path, line, f"not valid YAML: {problem or 'unreadable'}; {hint}") from None
    except yaml.YAMLError as exc:
        raise ToolsFileError(path, None, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
