"""The guard's one error: a refusal with a reason a person can act on."""

from __future__ import annotations

__all__ = ["Refusal"]


class Refusal(Exception):
    """The SQL text may not run; ``reason`` says why without echoing the whole query."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
