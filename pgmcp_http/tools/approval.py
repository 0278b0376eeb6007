"""One statement from a caller, approved for this database: the guard's verdict, then what only the
database knows (which of the functions it calls are SECURITY DEFINER, which of the relations it names or
functions it calls return a blocked table's rows)."""

from __future__ import annotations

from pgmcp_http.db import Transaction
from pgmcp_http.sqlguard import Approved, Refusal
from pgmcp_http.tools.spec import ToolContext

__all__ = ["approve"]


def approve(tx: Transaction, sql: str, ctx: ToolContext) -> Approved:
    """Approve ``sql`` or raise Refusal; the catalog's SECURITY DEFINER list and blocked lineage are read
    through the worker's short-lived memos, so most calls add no round trip."""
    approved = ctx.guard.check(sql)
    if (approved.relations or approved.functions) and ctx.policy.restricts_relations:
        reason = ctx.lineage.get(tx, ctx.policy).refusal(approved.relations, ctx.policy, approved.functions)
        if reason is not None:
            raise Refusal(reason)
    if approved.functions or approved.operators:
        definers = ctx.definers.get(tx)
        called = approved.functions | {(None, f"operator {op}") for op in approved.operators}
        reason = ctx.policy.definer_refusal(called, definers)
        if reason is not None:
            raise Refusal(reason)
    return approved
