"""A per-worker memo of verdicts: each distinct SQL text is parsed once.

Agents repeat the same statements with different parameters; the verdict on
a text under a fixed policy never changes, so it is kept (refusals too) in a
small LRU owned by the app, not by the module.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from pgmcp_http.sqlguard.errors import Refusal
from pgmcp_http.sqlguard.guard import Approved, check
from pgmcp_http.sqlguard.policy import GuardPolicy

__all__ = ["Guard"]


class Guard:
    """``check`` with a bounded memo, safe to share between threads."""

    def __init__(self, policy: GuardPolicy, *, size: int = 2048) -> None:
        self.policy = policy
        self._size = size
        self._memo: OrderedDict[str, Approved | Refusal] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, sql: str) -> Approved:
        """Approve ``sql`` or raise Refusal, parsing each distinct text once."""
        with self._lock:
            verdict = self._memo.get(sql)
            if verdict is not None:
                self._memo.move_to_end(sql)
        if verdict is None:
            try:
                verdict = check(sql, self.policy)
            except Refusal as refusal:
                verdict = refusal
            if len(sql) <= 16_384:
                with self._lock:
                    self._memo[sql] = verdict
                    if len(self._memo) > self._size:
                        self._memo.popitem(last=False)
        if isinstance(verdict, Refusal):
            raise Refusal(verdict.reason)
        return verdict
