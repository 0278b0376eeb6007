"""The one error of a tools file: where it is (file, line, tool) and what to do about it."""

from __future__ import annotations

from pgmcp_http.config import ConfigError

__all__ = ["ToolsFileError"]


class ToolsFileError(ConfigError):
    """A tools file the server cannot serve; a ConfigError, so start-up stops with this one line.

    The message reads ``TOOLS_FILE <path>, line <n>, tool <name>: <what is wrong and what to do>``.
    """

    def __init__(self, path: str, line: int | None, message: str, *, tool: str | None = None) -> None:
        self.path = path
        self.line = line
        self.tool = tool
        self.reason = " ".join(message.split())  # one line, whatever PyYAML or PostgreSQL wrote
        where = f"TOOLS_FILE {path}"
        if line is not None:
            where += f", line {line}"
        if tool is not None:
            where += f", tool {tool}"
        super().__init__(f"{where}: {self.reason}")
