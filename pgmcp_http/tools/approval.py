"""One statement from a caller, approved for this database: the guard's verdict, then what only the
database knows (which of the functions it calls are SECURITY DEFINER)."""

from __future__ import annotations

from pgmcp_http.catalog.definers import definer_functions
from pgmcp_http.db import Transaction
from pgmcp_http.sqlguard import Approved, Refusal
from pgmcp_http.tools.spec import ToolContext

__all__ = ["approve"]


def approve(tx: Transaction, sql: str, ctx: ToolContext) -> Approved:
    """Approve ``sql`` or raise Refusal; the catalog is read only when the statement calls functions."""
    approved = ctx.guard.check(sql)
    if approved.functions or approved.operators:
        definers = definer_functions(tx, (name for _, name in approved.functions), approved.operators)
        called = approved.functions | {(None, f"operator {op}") for op in approved.operators}
        reason = ctx.policy.definer_refusal(called, definers)
        if reason is not None:
            raise Refusal(reason)
    return approved
